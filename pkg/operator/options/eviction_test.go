package options

import (
	"strings"
	"testing"
	"time"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
)

// The eviction-cost estimate's flags reach the model the controllers get;
// the repeat-eviction rule is off unless asked for, and nonsense is refused
// with the flag named.
func TestEvictionFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want evictioncost.Model
		err  string
	}{
		{args: nil, want: evictioncost.Model{CheckpointInterval: time.Hour, RestartTime: 5 * time.Minute, Repeat: evictioncost.Repeat{Multiplier: 1}}},
		{args: []string{"--default-checkpoint-interval=never", "--default-restart-time=2m", "--repeat-eviction-window=24h", "--repeat-eviction-multiplier=2.5"},
			want: evictioncost.Model{CheckpointInterval: evictioncost.Never, RestartTime: 2 * time.Minute, Repeat: evictioncost.Repeat{Window: 24 * time.Hour, Multiplier: 2.5}}},
		{args: []string{"--repeat-eviction-multiplier=lots"}, err: "--repeat-eviction-multiplier"},
		{args: []string{"--repeat-eviction-multiplier=-2"}, err: "--repeat-eviction-multiplier"},
		{args: []string{"--repeat-eviction-window=-1h"}, err: "--repeat-eviction-window"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o, err := parse(tc.args...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want an error naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := o.Eviction(); got != tc.want {
				t.Errorf("Eviction() = %+v, want %+v", got, tc.want)
			}
		})
	}
}
