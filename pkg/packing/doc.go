// Package packing is karpenter-gpu's cost-optimal GPU packer.
//
// Pack is the pure packer: pod shapes and priced instance-type options in,
// the cheapest plan it finds out. PackPods is the one door for planning
// new capacity with it: NodeClaims for the pods of one NodePool, built as
// core's scheduler builds them, either for pending pods without core's
// scheduler or, with Options.Proposed, as a cheaper re-plan of the
// NodeClaims core's scheduler proposed (provisioning.RefineResults walks
// core's batch, NodePool by NodePool, and leaves everything the packer
// does not model exactly as core made it). The fluid LP lower bound lives
// in the lowerbound subpackage. The measurements (cost against the bound
// and against stock Karpenter on the Alibaba trace batches,
// TestTraceFleetCost) are in designs/packing.md.
package packing
