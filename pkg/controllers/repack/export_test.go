package repack

import (
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	karpcp "sigs.k8s.io/karpenter/pkg/cloudprovider"
)

// MemoBest is the poll's memoized Best, and Plans how many times Best ran.
func (r *Repacker) MemoBest(np *karpv1.NodePool, its []*karpcp.InstanceType, cands []Candidate) ([]Candidate, Move, bool) {
	return r.best(np, its, cands)
}

func (r *Repacker) Plans() int { return r.plans }
