package catalog_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/catalog"
)

const header = "instance_type,family,arch,vcpu,memory_mib,gpu_manufacturer,gpu_name,gpu_count,gpu_memory_mib_per_gpu,accelerator_resource,accelerator_count,efa_count,network_bandwidth_mbps,local_nvme_gib,max_pods,price_ondemand_us_east_1"

const goodRow = "g6.xlarge,g6,amd64,4,16384,nvidia,l4,1,22888,nvidia.com/gpu,1,0,2500,250,58,0.804800"

func TestEmbedded(t *testing.T) {
	entries, excluded, err := catalog.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	// 97 rows in the data file: every row is either an entry or an exclusion.
	if got := len(entries) + len(excluded); got != 97 {
		t.Errorf("entries+excluded = %d, want 97", got)
	}
	wantExcluded := []string{
		"dl2q.24xlarge", "g6f.2xlarge", "g6f.4xlarge", "g6f.large", "g6f.xlarge", "gr6f.4xlarge",
		"p6e-gb200.36xlarge", "trn2.3xlarge", "trn2u.48xlarge",
	}
	var names []string
	for _, x := range excluded {
		names = append(names, x.Name)
		if x.Reason == "" {
			t.Errorf("exclusion of %s has no reason", x.Name)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, wantExcluded) {
		t.Errorf("excluded = %v, want %v", names, wantExcluded)
	}

	i := slices.IndexFunc(entries, func(e catalog.Entry) bool { return e.Name == "p5.48xlarge" })
	if i < 0 {
		t.Fatal("p5.48xlarge missing")
	}
	p5 := entries[i]
	want := catalog.Entry{
		Name: "p5.48xlarge", Family: "p5", Size: "48xlarge", Arch: "amd64", VCPU: 192, MemoryMiB: 2097152,
		GPUManufacturer: "nvidia", GPUName: "h100", GPUCount: 8, GPUMemoryMiB: 81920,
		AcceleratorResource: "nvidia.com/gpu", AcceleratorCount: 8, EFACount: 32,
		NetworkBandwidthMbps: 3200000, LocalNVMeGiB: 30400, MaxPods: 100,
	}
	prices := p5.OnDemandPrices
	p5.OnDemandPrices = nil
	if !reflect.DeepEqual(p5, want) {
		t.Errorf("p5.48xlarge = %+v\nwant %+v", p5, want)
	}
	// Empty price cells are absent, never 0.
	if len(prices) != 1 || prices["us-east-1"] != 55.04 {
		t.Errorf("p5.48xlarge prices = %v, want only us-east-1: 55.04", prices)
	}
}

func TestEmbeddedReturnsCopies(t *testing.T) {
	a, _, _ := catalog.Embedded()
	a[0].Name = "mutated"
	for i := range a {
		if a[i].OnDemandPrices != nil {
			a[i].OnDemandPrices["us-east-1"] = -1
		}
	}
	b, _, _ := catalog.Embedded()
	if b[0].Name == "mutated" || b[0].OnDemandPrices["us-east-1"] == -1 {
		t.Error("Embedded returned shared state")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, csv, want string
	}{
		{"bad number", header + "\n" + goodRow + "\n" + strings.Replace(goodRow, ",4,16384,", ",four,16384,", 1),
			`test.csv:3: field "vcpu": invalid integer "four"`},
		{"negative number", header + "\n" + strings.Replace(goodRow, ",58,", ",-58,", 1),
			`test.csv:2: field "max_pods": negative value -58`},
		{"absurd number", header + "\n" + strings.Replace(goodRow, ",16384,", ",99999999999999,", 1),
			`test.csv:2: field "memory_mib": 99999999999999 exceeds`},
		{"bad price", header + "\n" + strings.Replace(goodRow, "0.804800", "cheap", 1),
			`test.csv:2: field "price_ondemand_us_east_1": invalid price "cheap"`},
		{"zero price", header + "\n" + strings.Replace(goodRow, "0.804800", "0", 1),
			`test.csv:2: field "price_ondemand_us_east_1": price must be positive`},
		{"NaN price", header + "\n" + strings.Replace(goodRow, "0.804800", "NaN", 1),
			`test.csv:2: field "price_ondemand_us_east_1": invalid price`},
		{"unknown column", header + ",colour\n" + goodRow + ",red",
			`test.csv:1: field "colour": unknown column`},
		{"missing column", strings.Replace(header, ",max_pods", "", 1) + "\n" + strings.Replace(goodRow, ",58,", ",", 1),
			`test.csv:1: field "max_pods": missing required column`},
		{"duplicate column", header + ",vcpu\n" + goodRow + ",4",
			`test.csv:1: field "vcpu": duplicate column`},
		{"duplicate type", header + "\n" + goodRow + "\n" + goodRow,
			`test.csv:3: field "instance_type": duplicate instance type "g6.xlarge" (first on line 2)`},
		{"empty name", header + "\n" + strings.TrimPrefix(goodRow, "g6.xlarge"),
			`test.csv:2: field "instance_type": empty`},
		{"wrong field count", header + "\n" + goodRow + ",extra",
			`test.csv:2: wrong number of fields`},
		{"empty input", "", `test.csv: empty input`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entries, excluded, err := catalog.Parse(strings.NewReader(tc.csv), "test.csv")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if entries != nil || excluded != nil {
				t.Errorf("got results with an error: %v %v", entries, excluded)
			}
		})
	}
}

func TestParseExclusions(t *testing.T) {
	rows := []string{
		goodRow,
		"x1.large,x1,amd64,,16384,,,,,,,0,,,58,",                                       // no vcpu
		"x2.large,x2,,4,16384,,,,,,,0,,,58,",                                           // no arch
		"x3.large,x3,riscv64,4,16384,,,,,,,0,,,58,",                                    // unsupported arch
		"x4.large,x4,amd64,4,16384,qualcomm,ai100,1,,,,0,,,58,",                        // accelerator without resource
		"x5.large,x5,amd64,4,16384,nvidia,l4,1,22888,example.com/npu,1,0,,,58,",        // unknown resource
		"x6.large,x6,amd64,4,16384,nvidia,l4,1,,nvidia.com/gpu,1,0,,,58,",              // GPU without memory
		"x7.large,x7,amd64,4,16384,,,,,,,0,,,58,",                                      // CPU-only: fine
		"x8.large,x8,amd64,4,16384,aws,inferentia2,1,,aws.amazon.com/neuron,1,0,,,58,", // Neuron: no memory needed
	}
	entries, excluded, err := catalog.Parse(strings.NewReader(header+"\n"+strings.Join(rows, "\n")), "t.csv")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name)
	}
	if want := []string{"g6.xlarge", "x7.large", "x8.large"}; !slices.Equal(got, want) {
		t.Errorf("entries = %v, want %v", got, want)
	}
	wantReasons := map[string]string{
		"x1.large": "missing vcpu",
		"x2.large": "missing arch",
		"x3.large": "unsupported arch",
		"x4.large": "no Kubernetes extended resource",
		"x5.large": "unsupported accelerator resource",
		"x6.large": "without gpu_memory",
	}
	if len(excluded) != len(wantReasons) {
		t.Errorf("excluded = %v", excluded)
	}
	for _, x := range excluded {
		if !strings.Contains(x.Reason, wantReasons[x.Name]) {
			t.Errorf("%s: reason %q, want it to contain %q", x.Name, x.Reason, wantReasons[x.Name])
		}
	}
}

func TestParseHeaderOrderAndBOM(t *testing.T) {
	// Columns are found by name: reversed order and a BOM still parse.
	cols := strings.Split(header, ",")
	vals := strings.Split(goodRow, ",")
	slices.Reverse(cols)
	slices.Reverse(vals)
	in := "\ufeff" + strings.Join(cols, ",") + "\n" + strings.Join(vals, ",") + "\n"
	entries, _, err := catalog.Parse(strings.NewReader(in), "rev.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name != "g6.xlarge" || entries[0].GPUName != "l4" || entries[0].OnDemandPrices["us-east-1"] != 0.8048 {
		t.Errorf("got %+v", entries)
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.csv")
	if err := os.WriteFile(path, []byte(header+"\n"+strings.Replace(goodRow, ",2500,", ",fast,", 1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := catalog.LoadFile(path)
	if want := path + `:2: field "network_bandwidth_mbps"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
	if _, _, err := catalog.LoadFile(filepath.Join(t.TempDir(), "missing.csv")); err == nil {
		t.Error("no error for a missing file")
	}
}
