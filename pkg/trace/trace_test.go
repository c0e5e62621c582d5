package trace

import (
	"strings"
	"testing"
	"time"
)

const header = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Pod
		wantErr string
	}{
		{
			name: "full row",
			in:   header + "p0,12000,16384,1,460,V100M16|T4,LS,Running,10,20,11\n",
			want: []Pod{{Name: "p0", CPUMilli: 12000, MemoryMiB: 16384, GPUs: 1, GPUMilli: 460, GPUSpec: []string{"V100M16", "T4"},
				QoS: "LS", Phase: "Running", Created: 10 * time.Second, Deleted: 20 * time.Second, HasTimes: true, Line: 2}},
		},
		{
			name: "static list has no times",
			in:   "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,2048,8,1000\n",
			want: []Pod{{Name: "p0", CPUMilli: 1000, MemoryMiB: 2048, GPUs: 8, GPUMilli: 1000, Deleted: Forever, Line: 2}},
		},
		{
			name: "columns in any order, empty deletion is forever, empty scheduled ok",
			in:   "creation_time,gpu_milli,num_gpu,memory_mib,cpu_milli,name,deletion_time,scheduled_time\n5,0,0,1,2,p,,\n",
			want: []Pod{{Name: "p", CPUMilli: 2, MemoryMiB: 1, Created: 5 * time.Second, Deleted: Forever, HasTimes: true, Line: 2}},
		},
		{name: "empty input", in: "", wantErr: "src:1: empty input"},
		{name: "header only", in: header, want: nil},
		{name: "unknown column", in: "name,cpu_milli,memory_mib,num_gpu,gpu_milli,colour\n", wantErr: `src:1: field "colour": unknown column`},
		{name: "duplicate column", in: "name,cpu_milli,memory_mib,num_gpu,gpu_milli,name\n", wantErr: `src:1: field "name": duplicate column`},
		{name: "missing required column", in: "name,cpu_milli,memory_mib,num_gpu\n", wantErr: `src:1: field "gpu_milli": required column missing`},
		{name: "malformed number", in: header + "p0,12x,1,1,1,,LS,Running,0,1,0\n", wantErr: `src:2: field "cpu_milli": malformed integer "12x"`},
		{name: "negative number", in: header + "p0,1,-5,1,1,,LS,Running,0,1,0\n", wantErr: `src:2: field "memory_mib": negative value -5`},
		{name: "empty number", in: header + "p0,1,1,,1,,LS,Running,0,1,0\n", wantErr: `src:2: field "num_gpu": empty`},
		{name: "negative duration", in: header + "ok,1,1,1,1,,LS,Running,0,1,0\np1,1,1,1,1,,LS,Running,30,20,30\n", wantErr: `src:3: field "deletion_time": negative duration`},
		{name: "malformed time", in: header + "p1,1,1,1,1,,LS,Running,abc,20,30\n", wantErr: `src:2: field "creation_time": malformed time "abc"`},
		{name: "NaN time", in: header + "p1,1,1,1,1,,LS,Running,NaN,20,30\n", wantErr: `src:2: field "creation_time": malformed time`},
		{name: "huge time", in: header + "p1,1,1,1,1,,LS,Running,1e300,1e301,30\n", wantErr: `src:2: field "creation_time": time "1e300" out of range`},
		{name: "empty name", in: header + ",1,1,1,1,,LS,Running,0,1,0\n", wantErr: `src:2: field "name": empty`},
		{name: "wrong width", in: header + "p0,1,1\n", wantErr: "src:2: wrong number of fields"},
		{name: "deletion without creation", in: "name,cpu_milli,memory_mib,num_gpu,gpu_milli,deletion_time\n", wantErr: "deletion_time without creation_time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in), "src")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d pods, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if g, w := got[i], tt.want[i]; !podEqual(g, w) {
					t.Errorf("pod %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func podEqual(a, b Pod) bool {
	if len(a.GPUSpec) != len(b.GPUSpec) {
		return false
	}
	for i := range a.GPUSpec {
		if a.GPUSpec[i] != b.GPUSpec[i] {
			return false
		}
	}
	a.GPUSpec, b.GPUSpec = nil, nil
	return a.Name == b.Name && a.CPUMilli == b.CPUMilli && a.MemoryMiB == b.MemoryMiB && a.GPUs == b.GPUs &&
		a.GPUMilli == b.GPUMilli && a.QoS == b.QoS && a.Phase == b.Phase && a.Created == b.Created &&
		a.Deleted == b.Deleted && a.HasTimes == b.HasTimes && a.Line == b.Line
}

func TestAliveAtAndBusiestMoments(t *testing.T) {
	s := time.Second
	pods := []Pod{
		{Name: "a", GPUs: 1, Created: 0, Deleted: 10 * s},
		{Name: "b", GPUs: 1, Created: 2 * s, Deleted: 10 * s},
		{Name: "c", GPUs: 1, Created: 4 * s, Deleted: 6 * s},
		{Name: "cpu", GPUs: 0, Created: 4 * s, Deleted: 6 * s},
		{Name: "d", GPUs: 2, Created: 6 * s, Deleted: 8 * s}, // arrives as c leaves
		{Name: "e", GPUs: 1, Created: 20 * s, Deleted: 30 * s},
		{Name: "f", GPUs: 1, Created: 21 * s, Deleted: 22 * s},
		{Name: "zero", GPUs: 1, Created: 25 * s, Deleted: 25 * s}, // never alive
	}
	aliveNames := func(t0 time.Duration) string {
		var n []string
		for _, p := range AliveAt(pods, t0) {
			n = append(n, p.Name)
		}
		return strings.Join(n, ",")
	}
	for _, tt := range []struct {
		at   time.Duration
		want string
	}{{0, "a"}, {4 * s, "a,b,c,cpu"}, {6 * s, "a,b,d"}, {10 * s, ""}, {25 * s, "e"}} {
		if got := aliveNames(tt.at); got != tt.want {
			t.Errorf("AliveAt(%v) = %q, want %q", tt.at, got, tt.want)
		}
	}
	tests := []struct {
		n    int
		want []time.Duration
	}{
		{0, nil},
		{1, []time.Duration{4 * s}},
		// 4s and 6s both hold 3 GPU pods; 2s is not a peak (4s holds more); 21s holds 2.
		{3, []time.Duration{4 * s, 6 * s, 21 * s}},
		{10, []time.Duration{4 * s, 6 * s, 21 * s}},
	}
	for _, tt := range tests {
		got := BusiestMoments(pods, tt.n)
		if len(got) != len(tt.want) {
			t.Fatalf("BusiestMoments(%d) = %v, want %v", tt.n, got, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("BusiestMoments(%d) = %v, want %v", tt.n, got, tt.want)
			}
		}
	}
	static := []Pod{{Name: "x", GPUs: 1, Deleted: Forever}, {Name: "y", GPUs: 2, Deleted: Forever}}
	if got := BusiestMoments(static, 3); len(got) != 1 || got[0] != 0 {
		t.Errorf("static list: BusiestMoments = %v, want [0]", got)
	}
}

func TestEmbedded(t *testing.T) {
	for _, tt := range []struct {
		name      string
		pods      int
		gpuPods   int
		withTimes bool
	}{
		{DefaultPodList, 8152, 0, true},
		{MultiGPU50PodList, 9061, 7973, false},
	} {
		pods, err := Embedded(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(pods) != tt.pods {
			t.Errorf("%s: %d pods, want %d", tt.name, len(pods), tt.pods)
		}
		if tt.gpuPods > 0 && len(GPUPods(pods)) != tt.gpuPods {
			t.Errorf("%s: %d GPU pods, want %d", tt.name, len(GPUPods(pods)), tt.gpuPods)
		}
		if pods[0].HasTimes != tt.withTimes {
			t.Errorf("%s: HasTimes = %v", tt.name, pods[0].HasTimes)
		}
	}
	pods, err := Embedded(DefaultPodList)
	if err != nil {
		t.Fatal(err)
	}
	moments := BusiestMoments(pods, 7)
	if len(moments) != 7 {
		t.Fatalf("want 7 moments, got %v", moments)
	}
	prev := 1 << 30
	for _, m := range moments {
		n := len(GPUPods(AliveAt(pods, m)))
		if n > prev {
			t.Errorf("moments not ordered busiest first: %d after %d", n, prev)
		}
		prev = n
		t.Logf("t=%v: %d GPU pods alive", m, n)
	}
	if _, err := Embedded("nope.csv"); err == nil {
		t.Error("want an error for an unknown embedded list")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(header + "p0,12000,16384,1,460,V100M16|T4,LS,Running,10,20,11\n")
	f.Add("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,2048,8,1000\n")
	f.Add(header + "p1,1,1,1,1,,LS,Running,30,20,30\n")
	f.Add("name,cpu_milli\n\"unterminated\n")
	f.Add("\ufeffname,cpu_milli,memory_mib,num_gpu,gpu_milli\n a , 1 ,2,3,4\n")
	f.Add(header + "p,1,1,1,1,,,,1e18,1e19,\n")
	f.Fuzz(func(t *testing.T, in string) {
		pods, err := Parse(strings.NewReader(in), "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz:") {
				t.Fatalf("error without source prefix: %v", err)
			}
			return
		}
		for _, p := range pods {
			if p.Deleted < p.Created || p.CPUMilli < 0 || p.MemoryMiB < 0 || p.GPUs < 0 || p.GPUMilli < 0 {
				t.Fatalf("invalid pod accepted: %+v", p)
			}
		}
		_ = BusiestMoments(pods, 3)
		_ = AliveAt(pods, 0)
	})
}
