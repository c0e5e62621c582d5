package provisioningrequest_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
)

func TestCRD(t *testing.T) {
	crd := provisioningrequest.CRD()
	if crd.Name != provisioningrequest.CRDName || crd.Spec.Group != autoscalingv1.GroupName {
		t.Fatalf("CRD %s (group %s), want %s", crd.Name, crd.Spec.Group, provisioningrequest.CRDName)
	}
	var storage string
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			storage = v.Name
		}
	}
	if storage != autoscalingv1.SchemeGroupVersion.Version {
		t.Errorf("storage version %q, want %q (the Go types this controller uses)", storage, autoscalingv1.SchemeGroupVersion.Version)
	}
}

// The chart installs the same CRD the controller and its tests use.
func TestCRDMatchesChart(t *testing.T) {
	mine, err := os.ReadFile("crd/autoscaling.x-k8s.io_provisioningrequests.yaml")
	if err != nil {
		t.Fatal(err)
	}
	chart, err := os.ReadFile("../../../charts/karpenter-gpu/files/autoscaling.x-k8s.io_provisioningrequests.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mine, chart) {
		t.Fatal("charts/karpenter-gpu/files/autoscaling.x-k8s.io_provisioningrequests.yaml differs from the controller's copy; run go generate ./pkg/controllers/provisioningrequest")
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		attempt int
		want    time.Duration
	}{
		{0, 30 * time.Second}, {1, 30 * time.Second}, {2, time.Minute}, {3, 2 * time.Minute}, {5, 8 * time.Minute}, {6, provisioningrequest.MaxRetryBackoff}, {30, provisioningrequest.MaxRetryBackoff},
	} {
		want := tt.want
		if want > provisioningrequest.MaxRetryBackoff {
			want = provisioningrequest.MaxRetryBackoff
		}
		if got := provisioningrequest.Backoff(30*time.Second, tt.attempt); got != want {
			t.Errorf("Backoff(30s, %d) = %s, want %s", tt.attempt, got, want)
		}
	}
}

func TestServed(t *testing.T) {
	for class, want := range map[string]bool{
		autoscalingv1.ProvisioningClassCheckCapacity:           true,
		autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp: true,
		"queued-provisioning.gke.io":                           false,
		"check-capacity.kubernetes.io":                         false,
		"":                                                     false,
	} {
		if got := provisioningrequest.Served(class); got != want {
			t.Errorf("Served(%q) = %v, want %v", class, got, want)
		}
	}
}
