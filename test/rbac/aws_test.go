package rbac_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/awslabs/operatorpkg/status"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	coreoptions "sigs.k8s.io/karpenter/pkg/operator/options"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/orphans"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/evictioncost"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/test/chaos"
)

// TestChartRBACCoversAWSBackendAndConsolidation runs the controller as the
// production chart configures it on EKS (tools/helm/values-eks.yaml: backend
// aws, feature gates NodeRepair, NodeOverlay, SpotToSpotConsolidation), as
// the chart's service account under the chart's roles, with the aws Backend
// and its orphan collector on the production SDK clients against the
// in-process EC2/IAM/SSM/Pricing endpoint. The GPUNodeClass is resolved
// through EC2 and IAM; a 3-GPU and a 1-GPU pod share a g6.12xlarge; when the
// 3-GPU pod goes, core's consolidation replaces the node with a g6.xlarge
// (launch, drain with eviction, NodeClaim deletion, TerminateInstances), and
// the replacement, left empty, is consolidated away. Kubelets are played by
// the test with admin credentials (a real node's kubelet has its own). Every
// request of the controller must be allowed by the chart.
func TestChartRBACCoversAWSBackendAndConsolidation(t *testing.T) {
	// Alone the test takes about 70 s; under the load of the whole suite one
	// consolidation round (core polls, waits its 15 s validation period,
	// launches, drains) has taken over two minutes, so the budget is wide.
	ctx, cancel := context.WithTimeout(context.Background(), 480*time.Second)
	defer cancel()
	objs := render(t, "eks.yaml", "-f", filepath.Join(chaos.RepoRoot(), "tools", "helm", "values-eks.yaml"))
	cp := chaos.StartControlPlane(t)
	cp.StartScheduler(t)
	chart := applyChartRBAC(t, ctx, cp, objs)
	if b := chart.env["BACKEND"]; b != "aws" {
		t.Fatalf("values-eks.yaml renders backend %q, want aws", b)
	}
	rec := newRecorder()
	cfg := serviceAccountConfig(t, cp, rec)
	logs := &chaos.LogBuffer{}
	logs.TailOnFailure(t, 40)

	version, err := awsbackend.KubernetesVersion(discovery.NewDiscoveryClientForConfigOrDie(cfg))
	if err != nil {
		t.Fatal(err)
	}
	region, clusterName := chart.env["AWS_REGION"], chart.env["CLUSTER_NAME"]
	srv := fakeaws.New(awsInventory(region, clusterName, version))
	t.Cleanup(srv.Close)
	stop, err := startAWSController(ctx, cfg, srv, chart, version, logs)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = stop()
		}
	}()
	go playKubelets(ctx, cp.Kube)

	nc := nodeClass()
	nc.Spec.SubnetSelectorTerms = []v1alpha1.SubnetSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": clusterName}}}
	nc.Spec.SecurityGroupSelectorTerms = []v1alpha1.SecurityGroupSelectorTerm{{Tags: map[string]string{"karpenter.sh/discovery": clusterName}}}
	np := nodePool()
	np.Spec.Template.Spec.Requirements = append(np.Spec.Template.Spec.Requirements,
		karpv1.NodeSelectorRequirementWithMinValues{Key: karpv1.CapacityTypeLabelKey, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.CapacityTypeOnDemand}})
	// The small pod's eviction cost is fixed ($0.01), so break-even
	// releases the node within seconds of its waste starting (the
	// g6.12xlarge's price less a g6.xlarge's, a few dollars an hour),
	// however slowly the test reaches the deletion below. Estimated from
	// the pod's run time instead, the wait would grow with how long the
	// pod had run by then (about ten times that, as its lost work grows
	// nearly as fast as the waste), a load-dependent wait this test does
	// not need.
	small := gpuPodN("small", 1)
	small.Annotations = map[string]string{evictioncost.AnnotationEvictionCost: "0.01"}
	for _, o := range []client.Object{nc, np, gpuPodN("big", 3), small} {
		if err := cp.Kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, ctx, 90*time.Second, "both pods running on one g6.12xlarge", rec, func() (bool, error) {
		pods, err := runningPods(ctx, cp.Kube)
		if err != nil || len(pods) != 2 || pods[0].Spec.NodeName != pods[1].Spec.NodeName {
			return false, err
		}
		node := &corev1.Node{}
		if err := cp.Kube.Get(ctx, client.ObjectKey{Name: pods[0].Spec.NodeName}, node); err != nil {
			return false, err
		}
		if it := node.Labels[corev1.LabelInstanceTypeStable]; it != "g6.12xlarge" {
			return false, fmt.Errorf("pods run on a %s", it)
		}
		return true, nil
	})
	var claims karpv1.NodeClaimList
	if err := cp.Kube.List(ctx, &claims); err != nil || len(claims.Items) != 1 {
		t.Fatalf("%d NodeClaims (%v), want 1", len(claims.Items), err)
	}
	first := claims.Items[0]
	if err := cp.Kube.Delete(ctx, gpuPodN("big", 3), client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	eventually(t, ctx, 240*time.Second, "consolidation replacing the g6.12xlarge with a g6.xlarge", rec, func() (bool, error) {
		var claims karpv1.NodeClaimList
		if err := cp.Kube.List(ctx, &claims); err != nil {
			return false, err
		}
		replaced := lo.ContainsBy(claims.Items, func(c karpv1.NodeClaim) bool { return c.Labels[corev1.LabelInstanceTypeStable] == "g6.xlarge" })
		if replaced && !lo.ContainsBy(claims.Items, func(c karpv1.NodeClaim) bool { return c.Name == first.Name }) {
			return true, nil
		}
		// What the claims look like, for the failure message.
		return false, fmt.Errorf("NodeClaims %v", lo.Map(claims.Items, func(c karpv1.NodeClaim, _ int) string {
			return fmt.Sprintf("%s(%s deleting=%t %v)", c.Name, c.Labels[corev1.LabelInstanceTypeStable], !c.DeletionTimestamp.IsZero(),
				lo.FilterMap(c.Status.Conditions, func(cond status.Condition, _ int) (string, bool) {
					return cond.Type + "=" + string(cond.Status), cond.Status != metav1.ConditionUnknown
				}))
		}))
	})
	t.Logf("consolidation replaced the g6.12xlarge %s after the 3-GPU pod was deleted", time.Since(deleted).Round(time.Second))
	// The evicted pod has no controller to recreate it: the replacement is
	// empty and goes too.
	eventually(t, ctx, 90*time.Second, "the empty replacement consolidated away", rec, func() (bool, error) {
		var claims karpv1.NodeClaimList
		err := cp.Kube.List(ctx, &claims)
		return err == nil && len(claims.Items) == 0, err
	})
	_ = cp.Kube.Delete(ctx, np)
	_ = cp.Kube.Delete(ctx, nc)
	time.Sleep(3 * time.Second)
	stopped = true
	if err := stop(); err != nil {
		t.Error(err)
	}
	rec.check(t, chart.granted)
	for _, want := range []request{{Verb: "delete", Group: "karpenter.sh", Resource: "nodeclaims"}, {Verb: "create", Resource: "pods/eviction"},
		{Verb: "patch", Group: v1alpha1.Group, Resource: "gpunodeclasses/status"}} {
		if !rec.used(want.Verb, want.Group, want.Resource) {
			t.Errorf("the run never made a %s request: it does not exercise consolidation and the node class as meant", want)
		}
	}
	live := lo.CountBy(srv.Instances(), func(i fakeaws.Instance) bool { return i.State == "pending" || i.State == "running" })
	t.Logf("EC2: %d CreateFleet, %d TerminateInstances, %d CreateInstanceProfile requests; %d instances launched, %d running at the end",
		len(srv.Requests("CreateFleet")), len(srv.Requests("TerminateInstances")), len(srv.Requests("CreateInstanceProfile")), len(srv.Instances()), live)
	if live != 0 || len(srv.Requests("TerminateInstances")) < 2 {
		t.Errorf("%d instances still running, %d terminations: the launches were not all terminated", live, len(srv.Requests("TerminateInstances")))
	}
}

func gpuPodN(name string, gpus int64) *corev1.Pod {
	p := gpuPod(name)
	p.Spec.TerminationGracePeriodSeconds = lo.ToPtr(int64(0))
	q := *resource.NewQuantity(gpus, resource.DecimalSI)
	p.Spec.Containers[0].Resources.Requests[v1alpha1.ResourceNVIDIAGPU] = q
	p.Spec.Containers[0].Resources.Limits[v1alpha1.ResourceNVIDIAGPU] = q
	return p
}

func runningPods(ctx context.Context, kube client.Client) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := kube.List(ctx, &pods, client.InNamespace("default")); err != nil {
		return nil, err
	}
	return lo.Filter(pods.Items, func(p corev1.Pod, _ int) bool { return p.Status.Phase == corev1.PodRunning }), nil
}

// awsInventory is a region with two tagged subnets, the EKS NVIDIA image of
// the API server's version, the node role, and L4 instances with one and
// four GPUs.
func awsInventory(region, clusterName, version string) fakeaws.Inventory {
	disc := map[string]string{"karpenter.sh/discovery": clusterName}
	return fakeaws.Inventory{
		Region: region,
		Subnets: []fakeaws.Subnet{
			{ID: "subnet-a", Zone: region + "a", FreeIPs: 500, Tags: disc},
			{ID: "subnet-b", Zone: region + "b", FreeIPs: 500, Tags: disc},
		},
		SecurityGroups: []fakeaws.SecurityGroup{{ID: "sg-nodes", Name: "nodes", Tags: disc}},
		Images:         []fakeaws.Image{{ID: "ami-nvx86", Name: "al2023-nvidia-x86_64", Arch: "x86_64", Owner: "amazon", Created: time.Unix(1_700_000_000, 0)}},
		InstanceTypes: []fakeaws.InstanceType{
			{Name: "g6.xlarge", Arch: "x86_64", VCPU: 4, MemoryMiB: 16384, GPUName: "L4", GPUManufacturer: "NVIDIA", GPUCount: 1, GPUMemoryMiB: 22888, ENIs: 4, IPsPerENI: 15},
			{Name: "g6.12xlarge", Arch: "x86_64", VCPU: 48, MemoryMiB: 196608, GPUName: "L4", GPUManufacturer: "NVIDIA", GPUCount: 4, GPUMemoryMiB: 91552, ENIs: 8, IPsPerENI: 30},
		},
		OnDemandPrices: map[string]float64{"g6.xlarge": 0.8048, "g6.12xlarge": 4.6016},
		SSMParameters: map[string]string{
			"/aws/service/eks/optimized-ami/" + version + "/amazon-linux-2023/x86_64/nvidia/recommended/image_id": "ami-nvx86",
		},
		Roles: []string{"KarpenterNodeRole-rbac"},
	}
}

// startAWSController assembles the controller set as cmd/controller does
// with --backend=aws (options from the chart's environment, core's field
// indexers, cluster state, decorated cloud provider,
// pkg/operator.NewControllers, the aws orphan collector) in a manager on cfg
// with leader election in the release namespace. It returns a stop function.
func startAWSController(parent context.Context, cfg *rest.Config, srv *fakeaws.Server, chart *chartRBAC, version string, logs *chaos.LogBuffer) (_ func() error, err error) {
	coreOpts, gpuOpts, err := chaos.Options(append([]string{"--backend=aws", "--cluster-name=" + chart.env["CLUSTER_NAME"],
		"--cluster-endpoint=" + chart.env["CLUSTER_ENDPOINT"], "--region=" + chart.env["AWS_REGION"], "--policy=" + chart.env["POLICY"],
		"--log-level=debug"}, chart.controllerArgs()...)...)
	if err != nil {
		return nil, err
	}
	// Core's controllers register Prometheus collectors when constructed:
	// they get a fresh registry (this process may have run another
	// controller), and the previous one is back after stop (the harness
	// starts its first controller on the default registry).
	previous := crmetrics.Registry
	crmetrics.Registry = prometheus.NewRegistry()
	restore := func() { crmetrics.Registry = previous }
	defer func() {
		if err != nil {
			restore()
		}
	}()
	logger := logs.Logger()
	log.SetLogger(logger)
	klog.SetLogger(logger)
	ctx := log.IntoContext(gpuOpts.ToContext(coreoptions.ToContext(context.Background(), coreOpts)), logger)
	mgr, err := chaos.NewManager(ctx, cfg, coreOpts, logger, true, namespace)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsbackend.LoadConfig(ctx, awsbackend.ConfigOptions{
		Region: gpuOpts.Region,
		Retry:  awsbackend.RetryOptions{MaxAttempts: 3, MaxBackoff: 10 * time.Millisecond},
		Extra: []func(*config.LoadOptions) error{
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDRBAC", "secret", "")),
			config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
		},
	})
	if err != nil {
		return nil, err
	}
	clients := awsbackend.NewClients(awsCfg, srv.URL)
	ca, err := awsbackend.CABundle(cfg)
	if err != nil {
		return nil, err
	}
	backend, err := awsbackend.NewBackend(ctx, awsbackend.Options{Region: awsCfg.Region, ClusterName: gpuOpts.ClusterName,
		ClusterEndpoint: gpuOpts.ClusterEndpoint, ClusterCABundle: ca, KubernetesVersion: version,
		EC2: clients.EC2, SSM: clients.SSM, Pricing: clients.Pricing, IAM: clients.IAM})
	if err != nil {
		return nil, err
	}
	kubeClient := mgr.GetClient()
	ctrls, err := chaos.Assemble(ctx, mgr, kubeClient, backend, clock.RealClock{}, gpuOpts)
	if err != nil {
		return nil, err
	}
	for _, r := range append(ctrls.All, orphans.NewController(backend.OrphanOptions(orphans.Options{KubeClient: kubeClient, Interval: 5 * time.Second}))) {
		if err := r.Register(ctx, mgr); err != nil {
			return nil, fmt.Errorf("registering %T, %w", r, err)
		}
	}
	runCtx, cancel := context.WithCancel(parent)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(runCtx) }()
	return func() error {
		cancel()
		defer restore()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("manager did not stop within 30s")
		}
	}, nil
}

// playKubelets plays, with the admin client, what the kubelets of the EC2
// instances and kube-controller-manager's node lifecycle would do: register
// a Node for each launched NodeClaim (its provider ID, labels, resources,
// Ready, tainted karpenter.sh/unregistered as Karpenter's bootstrap
// configures the kubelet), lift the not-ready taint of Ready nodes, run the
// pods bound to them, and complete the deletion of their pods.
func playKubelets(ctx context.Context, kube client.Client) {
	for ctx.Err() == nil {
		_ = kubeletTick(ctx, kube)
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func kubeletTick(ctx context.Context, kube client.Client) error {
	var claims karpv1.NodeClaimList
	var nodes corev1.NodeList
	var pods corev1.PodList
	if err := errors.Join(kube.List(ctx, &claims), kube.List(ctx, &nodes), kube.List(ctx, &pods)); err != nil {
		return err
	}
	ours := map[string]bool{}
	for _, n := range nodes.Items {
		if strings.HasPrefix(n.Spec.ProviderID, awsbackend.ProviderIDPrefix) {
			ours[n.Name] = true
		}
	}
	for _, nc := range claims.Items {
		pid := nc.Status.ProviderID
		if !strings.HasPrefix(pid, awsbackend.ProviderIDPrefix) || !nc.DeletionTimestamp.IsZero() ||
			lo.ContainsBy(nodes.Items, func(n corev1.Node) bool { return n.Spec.ProviderID == pid }) {
			continue
		}
		name := "ip-" + pid[strings.LastIndex(pid, "/")+1:]
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lo.Assign(nc.Labels, map[string]string{corev1.LabelHostname: name})},
			Spec:       corev1.NodeSpec{ProviderID: pid, Taints: append([]corev1.Taint{karpv1.UnregisteredNoExecuteTaint}, nc.Spec.Taints...)},
		}
		if err := kube.Create(ctx, node); err != nil {
			return err
		}
		stored := node.DeepCopy()
		now := metav1.Now()
		node.Status = corev1.NodeStatus{Capacity: nc.Status.Capacity, Allocatable: nc.Status.Allocatable, Phase: corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}},
			NodeInfo:   corev1.NodeSystemInfo{Architecture: "amd64", OperatingSystem: "linux"}}
		if err := kube.Status().Patch(ctx, node, client.MergeFrom(stored)); err != nil {
			return err
		}
	}
	notReady := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		ready := lo.ContainsBy(n.Status.Conditions, func(c corev1.NodeCondition) bool {
			return c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
		})
		if !ours[n.Name] || !ready || !lo.ContainsBy(n.Spec.Taints, func(t corev1.Taint) bool { return t.MatchTaint(&notReady) }) {
			continue
		}
		stored := n.DeepCopy()
		n.Spec.Taints = lo.Reject(n.Spec.Taints, func(t corev1.Taint, _ int) bool { return t.MatchTaint(&notReady) })
		_ = kube.Patch(ctx, n, client.MergeFromWithOptions(stored, client.MergeFromWithOptimisticLock{}))
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		switch {
		case !ours[p.Spec.NodeName]:
		case !p.DeletionTimestamp.IsZero():
			_ = client.IgnoreNotFound(kube.Delete(ctx, p, client.GracePeriodSeconds(0)))
		case p.Status.Phase == "" || p.Status.Phase == corev1.PodPending:
			stored := p.DeepCopy()
			now := metav1.Now()
			p.Status.Phase, p.Status.StartTime = corev1.PodRunning, &now
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now})
			_ = kube.Status().Patch(ctx, p, client.MergeFrom(stored))
		}
	}
	return nil
}
