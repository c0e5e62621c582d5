// Package packing is karpenter-gpu's cost-optimal GPU packer.
//
// Pack is the pure packer: pod shapes and priced instance-type options in,
// the cheapest plan it finds out. Refine applies it to the NodeClaims
// Karpenter core's scheduler proposed, replacing a NodePool's GPU
// NodeClaims with a cheaper set when every constraint on them is one the
// packer models, and leaving everything else exactly as core made it.
// PackPods builds NodeClaims for pending pods without core's scheduler.
// The fluid LP lower bound lives in the lowerbound subpackage. The
// measurements (cost against the bound and against stock Karpenter on the
// Alibaba trace batches, TestTraceFleetCost) are in designs/packing.md.
package packing
