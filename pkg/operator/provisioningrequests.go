package operator

import (
	"context"
	"fmt"

	"github.com/awslabs/operatorpkg/controller"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
)

// provisioningRequestController returns the ProvisioningRequest controller
// and the pod-group controller (pods labelled karpenter-gpu.io/pod-group,
// provisioned all-or-nothing through ProvisioningRequests) when
// Options.ProvisioningRequests asks for them: "true" (the CRD must be
// served), "auto" (when the CRD is served at startup), "false" or "" (off).
func provisioningRequestController(ctx context.Context, o Options) ([]controller.Controller, error) {
	switch o.ProvisioningRequests {
	case "", "false":
		return nil, nil
	case "true", "auto":
	default:
		return nil, fmt.Errorf("ProvisioningRequests must be auto, true or false, got %q", o.ProvisioningRequests)
	}
	served, err := provisioningRequestsServed(o)
	if err != nil {
		return nil, fmt.Errorf("looking up the ProvisioningRequest API, %w", err)
	}
	if !served {
		if o.ProvisioningRequests == "true" {
			return nil, fmt.Errorf("ProvisioningRequests are on but the %s CRD is not installed (chart value provisioningRequests.installCRD)", provisioningrequest.CRDName)
		}
		log.FromContext(ctx).Info("ProvisioningRequest CRD not installed; not serving ProvisioningRequests (restart after installing it)")
		return nil, nil
	}
	var apiReader client.Reader
	if o.Manager != nil {
		apiReader = o.Manager.GetAPIReader()
	}
	return []controller.Controller{
		provisioningrequest.NewController(provisioningrequest.Options{Clock: o.Clock, KubeClient: o.KubeClient, APIReader: apiReader,
			CloudProvider: o.CloudProvider, Cluster: o.Cluster, Recorder: o.Recorder, BookingTTL: o.ProvisioningRequestBookingTTL,
			LaunchTimeout: o.ProvisioningRequestLaunchTimeout, MaxAttempts: o.ProvisioningRequestMaxAttempts, RetryBackoff: o.ProvisioningRequestRetryBackoff}),
		provisioningrequest.NewPodGroupController(provisioningrequest.PodGroupOptions{Clock: o.Clock, KubeClient: o.KubeClient, APIReader: apiReader, Recorder: o.Recorder, RetryBackoff: o.ProvisioningRequestRetryBackoff}),
	}, nil
}

// provisioningRequestsServed asks the API server (discovery, through the
// manager's REST mapper) whether autoscaling.x-k8s.io/v1 ProvisioningRequest
// exists.
func provisioningRequestsServed(o Options) (bool, error) {
	if o.Manager == nil {
		// The simulator's in-memory API server serves every type of the
		// client's scheme and says so.
		return o.ProvisioningRequestsServed, nil
	}
	_, err := o.Manager.GetRESTMapper().RESTMapping(schema.GroupKind{Group: autoscalingv1.GroupName, Kind: "ProvisioningRequest"}, autoscalingv1.SchemeGroupVersion.Version)
	if meta.IsNoMatchError(err) {
		return false, nil
	}
	return err == nil, err
}
