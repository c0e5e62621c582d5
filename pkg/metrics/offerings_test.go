package metrics_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/metrics"
	fakefleet "github.com/karpenter-gpu/karpenter-gpu/providers/fake"
	"github.com/karpenter-gpu/karpenter-gpu/test/dashboard"
)

// TestOfferingMetrics runs the metrics controller over the real cloud
// provider and fake fleet (embedded catalog, us-east-1 on-demand prices,
// three zones): every offering of a GPUNodeClass NodePool's instance types
// is exported with its price, price per GPU and availability; a capacity
// refusal turns its offering's availability to 0; NodePools of other node
// classes (Karpenter-AWS's EC2NodeClass) contribute nothing.
func TestOfferingMetrics(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	nc := &v1alpha1.GPUNodeClass{ObjectMeta: metav1.ObjectMeta{Name: "gpu"}, Spec: v1alpha1.GPUNodeClassSpec{Role: "r"}}
	gpuPool := &karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "gpu"}, Spec: karpv1.NodePoolSpec{Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
		NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: "gpu"},
	}}}}
	awsPool := &karpv1.NodePool{ObjectMeta: metav1.ObjectMeta{Name: "cpu"}, Spec: karpv1.NodePoolSpec{Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
		NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.AWSGroup, Kind: "EC2NodeClass", Name: "default"},
	}}}}
	kube := fake.NewClientBuilder().WithObjects(nc, gpuPool, awsPool).Build()
	fleet := fakefleet.NewFleet(fakefleet.Options{Clock: clk, Seed: 1})
	cp, err := gpucp.New(gpucp.Options{KubeClient: kube, Backend: fleet, Clock: clk, ClusterName: "unit"})
	if err != nil {
		t.Fatal(err)
	}
	c := metrics.NewController(metrics.Options{Clock: clk, KubeClient: kube, CloudProvider: cp})
	if _, err := c.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	its, err := cp.GetInstanceTypes(ctx, gpuPool)
	if err != nil {
		t.Fatal(err)
	}
	offerings := 0
	for _, it := range its {
		offerings += len(it.Offerings)
	}
	if got := testutil.CollectAndCount(metrics.OfferingPriceEstimate); got != offerings {
		t.Errorf("%d price series, want one per offering (%d)", got, offerings)
	}
	if got := testutil.CollectAndCount(metrics.OfferingAvailable); got != offerings {
		t.Errorf("%d availability series, want %d", got, offerings)
	}
	// g6.12xlarge: 4 L4 at $4.6016/h on demand in us-east-1.
	g6 := []string{"g6.12xlarge", "on-demand", "us-east-1b", "l4", "4"}
	if got := testutil.ToFloat64(metrics.OfferingPriceEstimate.WithLabelValues(g6...)); got != 4.6016 {
		t.Errorf("g6.12xlarge price %v, want 4.6016", got)
	}
	if got := testutil.ToFloat64(metrics.OfferingGPUPriceEstimate.WithLabelValues(g6...)); got != 4.6016/4 {
		t.Errorf("g6.12xlarge price per GPU %v, want %v", got, 4.6016/4)
	}
	if got := testutil.ToFloat64(metrics.OfferingAvailable.WithLabelValues(g6...)); got != 1 {
		t.Errorf("g6.12xlarge available %v, want 1", got)
	}
	inf2 := []string{"inf2.xlarge", "on-demand", "us-east-1a", "inferentia2", "1"}
	if got := testutil.ToFloat64(metrics.OfferingPriceEstimate.WithLabelValues(inf2...)); got != 0.7582 {
		t.Errorf("inf2.xlarge (a Neuron accelerator) price %v, want 0.7582", got)
	}

	// The cloud refuses g6.12xlarge in us-east-1b: that offering only.
	cp.Unavailable().MarkUnavailable("g6.12xlarge", "us-east-1b", karpv1.CapacityTypeOnDemand)
	if _, err := c.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(metrics.OfferingAvailable.WithLabelValues(g6...)); got != 0 {
		t.Errorf("refused g6.12xlarge available %v, want 0", got)
	}
	if got := testutil.ToFloat64(metrics.OfferingPriceEstimate.WithLabelValues(g6...)); got != 4.6016 {
		t.Errorf("refused g6.12xlarge keeps its price: %v", got)
	}
	other := []string{"g6.12xlarge", "on-demand", "us-east-1a", "l4", "4"}
	if got := testutil.ToFloat64(metrics.OfferingAvailable.WithLabelValues(other...)); got != 1 {
		t.Errorf("g6.12xlarge in us-east-1a available %v, want 1", got)
	}

	// Without a GPUNodeClass NodePool there is nothing to export.
	if err := kube.Delete(ctx, gpuPool); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.CollectAndCount(metrics.OfferingAvailable); got != 0 {
		t.Errorf("%d availability series with only an EC2NodeClass NodePool, want 0", got)
	}
}

// TestDashboardOfferingPanels checks that the chart's Grafana dashboard
// queries the offering metrics by their exported names and labels.
func TestDashboardOfferingPanels(t *testing.T) {
	panels := dashboard.Panels(t, "../..")
	exported := map[string]bool{}
	for _, c := range []prometheus.Collector{metrics.OfferingPriceEstimate, metrics.OfferingGPUPriceEstimate, metrics.OfferingAvailable} {
		exported[dashboard.MetricName(t, c)] = true
	}
	used := map[string]bool{}
	for _, p := range panels {
		for _, target := range p.Targets {
			for _, name := range regexp.MustCompile(`karpenter_gpu_offering_[a-z_]+`).FindAllString(target.Expr, -1) {
				if !exported[name] {
					t.Errorf("panel %q queries %s, which is not exported", p.Title, name)
				}
				used[name] = true
			}
		}
	}
	if !used["karpenter_gpu_offering_gpu_price_estimate"] || !used["karpenter_gpu_offering_available"] {
		t.Errorf("dashboard queries %v; want the price per GPU-hour and availability", used)
	}
}
