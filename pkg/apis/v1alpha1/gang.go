package v1alpha1

// Placement group strategies of GangOptions.
const (
	// GangPlacementCluster: a cluster placement group for each gang of
	// EFA-capable instance types.
	GangPlacementCluster = "Cluster"
	// GangPlacementNone: no placement group.
	GangPlacementNone = "None"
)

// GangOptions configure how the nodes of an all-or-nothing gang (the
// NodeClaims a best-effort-atomic-scale-up ProvisioningRequest launches
// together) are placed. See designs/gang.md.
// +kubebuilder:validation:XValidation:message="placementGroupName requires placementGroup Cluster",rule="!has(self.placementGroupName) || self.placementGroup == 'Cluster'"
type GangOptions struct {
	// PlacementGroup: Cluster launches each gang whose instance types all
	// support EFA (p4d, p5, p5e, p5en, p6, trn1, trn2, ...) into a cluster
	// placement group created for it and deleted once empty, so its nodes
	// sit close together on the network; None uses no placement group
	// (a cluster group can make capacity harder to find). Reserved capacity
	// (ODCRs, capacity blocks) is used where it was reserved either way.
	// Default: Cluster.
	// +kubebuilder:validation:Enum:={Cluster,None}
	// +kubebuilder:default=Cluster
	// +optional
	PlacementGroup string `json:"placementGroup,omitempty"`

	// PlacementGroupName is an existing cluster placement group every gang
	// of this class launches into instead of one created per gang (the
	// controller neither creates nor deletes it). Requires placementGroup
	// Cluster. Default: none.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[\x21-\x7e]+$`
	// +optional
	PlacementGroupName *string `json:"placementGroupName,omitempty"`
}
