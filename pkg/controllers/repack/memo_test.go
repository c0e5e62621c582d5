package repack_test

import (
	"testing"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/repack"
)

// TestBestMemo: the poll asks the packer again only when something Best
// decides from has changed since the pool's last answer without a move, and
// the memo never hides a move Best would find.
func TestBestMemo(t *testing.T) {
	its := catalogTypes(t)
	np := nodePool()
	cand := func(name, it string, pods ...*corev1.Pod) repack.Candidate {
		return repack.Candidate{NodeClaim: &karpv1.NodeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}}, NodePool: np, Pods: pods, Price: priceOf(t, its, it)}
	}
	small := []repack.Candidate{
		cand("small-a", "g4dn.xlarge", pod(2000, 8192, 1)),
		cand("small-b", "g4dn.xlarge", pod(2000, 8192, 1)),
	}
	// dearer is the catalog with every offering of g4dn.xlarge at $20/h
	// (copies: the catalog's own types are not changed).
	dearer := lo.Map(its, func(it *cloudprovider.InstanceType, _ int) *cloudprovider.InstanceType {
		if it.Name != "g4dn.xlarge" {
			return it
		}
		return &cloudprovider.InstanceType{Name: it.Name, Requirements: it.Requirements, Capacity: it.Capacity, Overhead: it.Overhead,
			Offerings: lo.Map(it.Offerings, func(o *cloudprovider.Offering, _ int) *cloudprovider.Offering {
				oc := *o
				oc.Price = 20
				return &oc
			})}
	})
	withPod := func(cs []repack.Candidate, i int, p *corev1.Pod) []repack.Candidate {
		out := append([]repack.Candidate(nil), cs...)
		out[i].Pods = append(append([]*corev1.Pod(nil), out[i].Pods...), p)
		return out
	}
	// Two stranded 8-GPU nodes: Best merges them.
	stranded := []repack.Candidate{cand("big-a", "g6.48xlarge", pod(2000, 8192, 1)), cand("big-b", "g6.48xlarge", pod(2000, 8192, 1))}

	for _, tc := range []struct {
		name      string
		next      func() ([]*cloudprovider.InstanceType, []repack.Candidate)
		wantPlans int  // Best's runs over both polls
		wantMove  bool // the second poll finds a move
	}{
		{"nothing changed: asked once", func() ([]*cloudprovider.InstanceType, []repack.Candidate) { return its, small }, 1, false},
		{"a node's pods changed", func() ([]*cloudprovider.InstanceType, []repack.Candidate) {
			return its, withPod(small, 1, pod(500, 1024, 0))
		}, 2, false},
		{"a node left the candidates", func() ([]*cloudprovider.InstanceType, []repack.Candidate) { return its, small[:1] }, 2, false},
		{"an offering's price changed", func() ([]*cloudprovider.InstanceType, []repack.Candidate) { return dearer, small }, 2, false},
		{"a stranded node was released", func() ([]*cloudprovider.InstanceType, []repack.Candidate) { return its, stranded }, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := repack.New(repack.Options{})
			if _, _, ok := r.MemoBest(np, its, small); ok {
				t.Fatal("right-sized nodes got a move")
			}
			nextIts, next := tc.next()
			olds, move, ok := r.MemoBest(np, nextIts, next)
			if r.Plans() != tc.wantPlans {
				t.Errorf("Best ran %d times; want %d", r.Plans(), tc.wantPlans)
			}
			if ok != tc.wantMove {
				t.Errorf("second poll: move=%v; want %v", ok, tc.wantMove)
			}
			// The memoized answer is Best's own.
			wantOlds, wantMove, wantOK := repack.Best(np, nextIts, next)
			if ok != wantOK || len(olds) != len(wantOlds) || move.Cost != wantMove.Cost || len(move.Pods) != len(wantMove.Pods) {
				t.Errorf("memoized: move of %d nodes at $%.3f/h (ok=%v); Best: %d nodes at $%.3f/h (ok=%v)",
					len(olds), move.Cost, ok, len(wantOlds), wantMove.Cost, wantOK)
			}
		})
	}
}
