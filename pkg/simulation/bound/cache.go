package bound

// The fluid LP bound of a window is often most of a replay's CPU (gonum's
// simplex, ~0.1 s per distinct alive set) and depends only on the bound
// problem (pod shapes, the types and prices they may use, the changes of
// the alive set, the exact share) and the code that solves it: the same
// for every policy and every karpenter-gpu setting replayed on the same
// input. Cache.Dir keeps it on disk, keyed by the problem and the
// running binary, so the next run of the same window reads it instead of
// solving it again. What is read is what was computed (JSON keeps float64
// exactly), so a cached bound changes no number of the report.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

var (
	exeHashOnce sync.Once
	exeHash     string
	exeHashErr  error
)

// ExecutableDigest hashes the running binary (its build ID and everything
// it embeds): the code behind a cached result, the bound's here and the
// stock run's in cmd/simulator.
func ExecutableDigest() (string, error) {
	exeHashOnce.Do(func() {
		path, err := os.Executable()
		if err != nil {
			exeHashErr = err
			return
		}
		f, err := os.Open(path)
		if err != nil {
			exeHashErr = err
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			exeHashErr = err
			return
		}
		exeHash = hex.EncodeToString(h.Sum(nil))
	})
	return exeHash, exeHashErr
}

// key is the cache key of a bound problem ("" when it cannot be made).
func (bp *Problem) key() string {
	exe, err := ExecutableDigest()
	if err != nil {
		return ""
	}
	h := sha256.New()
	enc := json.NewEncoder(h)
	if err := enc.Encode(struct {
		Exe        string
		Shapes     []Shape
		Types      any
		Compat     [][]bool
		Changes    []Change
		End        int64
		ExactShare float64
	}{exe, bp.Shapes, bp.Types, bp.Compat, bp.Changes, int64(bp.End), bp.ExactShare}); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// stored is a bound as kept on disk.
type stored struct {
	USD       float64 `json:"usd"`
	Steps     []Step  `json:"steps"`
	Solves    int     `json:"solves"`
	ExactTime float64 `json:"exact_time"`
}

func load(dir, key string) (*stored, bool) {
	if dir == "" || key == "" {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(dir, key+".json"))
	if err != nil {
		return nil, false
	}
	s := &stored{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, false
	}
	return s, true
}

// store writes the bound under dir (nothing when dir or key is empty).
func store(dir, key string, s *stored) error {
	if dir == "" || key == "" {
		return nil
	}
	return StoreJSON(dir, key, s)
}

// StoreJSON writes v as dir/key.json atomically (a temporary file renamed),
// so concurrent runs never read half a file: the bound cache here and the
// stock cache in cmd/simulator.
func StoreJSON(dir, key string, v any) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, key+".*.tmp")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, key+".json"))
}

// Cache holds the lower bound of one workload; share one between the runs
// of a --compare (same workload, same catalog and NodePools), so it is
// computed once.
type Cache struct {
	once sync.Once
	done chan struct{}
	// boost is closed when a run waits for the bound: from then on it is
	// solved on every core (before, on one fewer than the machine has).
	boost     chan struct{}
	boostOnce sync.Once
	usd       float64
	series    []Step
	err       error
	// solves is the number of LP solves; exactTime the share of the
	// simulated time whose bound was solved exactly.
	solves    int
	exactTime float64
	// Dir, when set, keeps bounds on disk between runs: a bound already
	// computed for the same problem by the same binary is read instead of
	// solved.
	Dir string
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{done: make(chan struct{}), boost: make(chan struct{})}
}

// Start starts computing the bound of the problem setup returns in the
// background, once per cache (later calls return nil and do nothing).
func (c *Cache) Start(setup func() (*Problem, error)) error {
	var setupErr error
	c.once.Do(func() {
		problem, err := setup()
		if err != nil {
			setupErr = err
			c.err = err
			close(c.done)
			return
		}
		problem.Workers, problem.More = max(1, runtime.GOMAXPROCS(0)-1), c.boost
		key := ""
		if c.Dir != "" {
			key = problem.key()
		}
		set := func(sb *stored) {
			c.usd, c.solves, c.exactTime = sb.USD, sb.Solves, sb.ExactTime
			c.series = append(c.series, sb.Steps...)
		}
		if sb, ok := load(c.Dir, key); ok {
			set(sb)
			close(c.done)
			return
		}
		go func() {
			defer close(c.done)
			sb := &stored{}
			sb.USD, sb.Steps, sb.Solves = problem.Integrate()
			sb.ExactTime = problem.ExactTime
			set(sb)
			// A bound that cannot be kept is computed again next time.
			_ = store(c.Dir, key, sb)
		}()
	})
	return setupErr
}

// Wait waits for the background computation: the bound in USD and its $/h
// as a step function.
func (c *Cache) Wait() (usd float64, series []Step, err error) {
	c.boostOnce.Do(func() { close(c.boost) })
	<-c.done
	return c.usd, c.series, c.err
}

// Solves is the number of LP solves behind the bound, and ExactTime the
// share of the simulated time whose bound was solved exactly (the rest has
// solve-free bounds, still valid); both are known once Wait returns.
func (c *Cache) Solves() int { return c.solves }

// ExactTime: see Solves.
func (c *Cache) ExactTime() float64 { return c.exactTime }
