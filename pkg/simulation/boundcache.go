package simulation

// The fluid LP bound of a window is often most of a replay's CPU (gonum's
// simplex, ~0.1 s per distinct alive set) and depends only on the bound
// problem (pod shapes, the types and prices they may use, the changes of
// the alive set, the exact share) and the code that solves it: the same
// for every policy and every karpenter-gpu setting replayed on the same
// input. LowerBoundCache.Dir keeps it on disk, keyed by the problem and the
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
	"sync"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/simulation/bound"
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

// boundKey is the cache key of a bound problem ("" when it cannot be
// made).
func boundKey(bp *bound.Problem) string {
	exe, err := ExecutableDigest()
	if err != nil {
		return ""
	}
	h := sha256.New()
	enc := json.NewEncoder(h)
	if err := enc.Encode(struct {
		Exe        string
		Shapes     []bound.Shape
		Types      any
		Compat     [][]bool
		Changes    []bound.Change
		End        int64
		ExactShare float64
	}{exe, bp.Shapes, bp.Types, bp.Compat, bp.Changes, int64(bp.End), bp.ExactShare}); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// storedBound is a bound as kept on disk.
type storedBound struct {
	USD       float64      `json:"usd"`
	Steps     []bound.Step `json:"steps"`
	Solves    int          `json:"solves"`
	ExactTime float64      `json:"exact_time"`
}

func loadBound(dir, key string) (*storedBound, bool) {
	if dir == "" || key == "" {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(dir, key+".json"))
	if err != nil {
		return nil, false
	}
	s := &storedBound{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, false
	}
	return s, true
}

// storeBound writes the bound under dir (nothing when dir or key is empty).
func storeBound(dir, key string, s *storedBound) error {
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
