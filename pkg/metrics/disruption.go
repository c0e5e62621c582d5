package metrics

// Soft cordons (drain by attrition) and repacking moves: what karpenter-gpu
// does to GPU nodes between break-even protection and core's consolidation.
var (
	// SoftCordonsTotal counts soft-cordon changes: "cordoned" (the
	// break-even rule found the node reclaimable), "uncordoned" (no longer
	// reclaimable, or its GPU work ended) and "lifted" (the provisioning
	// loop needed its free capacity for a pending pod).
	SoftCordonsTotal = NewCounterVec("attrition", "soft_cordons_total", "Soft-cordon (PreferNoSchedule karpenter-gpu.io/draining) changes on GPU nodes, by NodePool and outcome: cordoned, uncordoned, lifted.", LabelNodePool, LabelOutcome)
	// RepacksTotal counts the nodes of repacking moves by outcome:
	// "started" (replacements launched), "completed" (the old node deleted
	// once they were Ready), "aborted" (replacements failed, timed out, or
	// the old node's pods changed). A merge of three nodes counts three.
	RepacksTotal = NewCounterVec("repack", "moves_total", "Nodes of GPU repacking moves (released nodes replaced by the packer's cheaper set of new nodes), by NodePool and outcome: started, completed, aborted.", LabelNodePool, LabelOutcome)
	// RepackSavingsUSDPerHour sums the $/h completed moves saved (old
	// node's price minus its replacements' prices).
	RepackSavingsUSDPerHour = NewCounterVec("repack", "savings_usd_per_hour_total", "Sum over completed repacking moves of the hourly price saved (old node minus replacements), by NodePool.", LabelNodePool)
)
