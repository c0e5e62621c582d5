// Package kueue_test runs karpenter-gpu's ProvisioningRequest support under
// the real Kueue controller: a real control plane (etcd, kube-apiserver,
// kube-scheduler and kube-controller-manager's Job controller, bin/k8s),
// Kueue's manager (sigs.k8s.io/kueue, built by tools/build-kueue.sh into
// bin/kueue with its CRDs) and the karpenter-gpu controller binary with the
// fake backend, whose registrar plays the kubelets. A ClusterQueue's
// AdmissionCheck uses Kueue's ProvisioningRequest admission check
// (kueue.x-k8s.io/provisioning-request) with the class
// best-effort-atomic-scale-up.autoscaling.x-k8s.io, which karpenter-gpu
// serves: an 8-pod GPU Job is admitted only once all its capacity is
// provisioned, then every pod runs; a Job the NodePool's GPU limit cannot
// hold stays suspended with karpenter-gpu's reason and launches nothing.
package kueue_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/samber/lo"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	autoscalingv1 "k8s.io/autoscaler/cluster-autoscaler/apis/provisioningrequest/autoscaling.x-k8s.io/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/karpenter/pkg/apis"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"
	"sigs.k8s.io/yaml"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/provisioningrequest"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
	"github.com/karpenter-gpu/karpenter-gpu/test/process"
)

const (
	namespace = "default"
	// queueLabel is the label a Job names its LocalQueue with
	// (sigs.k8s.io/kueue/pkg/controller/constants.QueueLabel).
	queueLabel = "kueue.x-k8s.io/queue-name"
	// kueueNamespace holds the secret of Kueue's internal certificate
	// management.
	kueueNamespace = "kueue-system"
	gangSize       = 8
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// This module's go.mod is found first; the product's is two levels up.
	if filepath.Base(root) == "kueue" {
		root = filepath.Join(root, "..", "..")
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "controller")); err != nil {
		_, file, _, _ := runtime.Caller(0)
		root = filepath.Join(filepath.Dir(file), "..", "..")
	}
	return root
}

// kueueBinaries returns Kueue's manager, its CRD directory and the
// kube-apiserver that reports its release version (Kueue's manager exits on
// bin/k8s's placeholder version), built by tools/build-kueue.sh, or fails
// naming the command that builds them.
func kueueBinaries(t *testing.T, root string) (manager, crds, apiserver string) {
	t.Helper()
	dir := filepath.Join(root, "bin", "kueue")
	manager, crds, apiserver = filepath.Join(dir, "manager"), filepath.Join(dir, "crds"), filepath.Join(dir, "kube-apiserver")
	for _, p := range []string{manager, apiserver, filepath.Join(crds, "kueue.x-k8s.io_workloads.yaml")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("Kueue is not built (%s missing); run `make kueue-bin` (tools/build-kueue.sh, ~10 min cold) or `make test`", p)
		}
	}
	return manager, crds, apiserver
}

// kueueCRDs reads Kueue's CRDs.
func kueueCRDs(t *testing.T, dir string) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Kueue CRDs in %s: %v", dir, err)
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(b, crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, crd)
	}
	return out
}

// addConversionWebhooks gives the five kinds Kueue serves in two versions
// the conversion webhook stanza Kueue's kustomization adds (envtest drops
// it from CRDs whose types its scheme cannot convert): Kueue's certificate
// rotator injects its CA into them and reports ready only when it could.
// Nothing here reads or writes another version than the storage version
// (v1beta2), so the webhook is never called. Kueue's admission webhooks
// are not registered either (no webhook configurations; its webhook server
// listens on loopback unused), so Jobs are created suspended, as Kueue's
// documentation asks.
func addConversionWebhooks(ctx context.Context, t *testing.T, kube client.Client) {
	t.Helper()
	for _, plural := range []string{"localqueues", "clusterqueues", "workloads", "cohorts", "multikueueclusters"} {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := kube.Get(ctx, client.ObjectKey{Name: plural + "." + kueue.GroupVersion.Group}, crd); err != nil {
			t.Fatal(err)
		}
		crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{
			Strategy: apiextensionsv1.WebhookConverter,
			Webhook: &apiextensionsv1.WebhookConversion{
				ClientConfig: &apiextensionsv1.WebhookClientConfig{Service: &apiextensionsv1.ServiceReference{
					Namespace: kueueNamespace, Name: "kueue-webhook-service", Path: lo.ToPtr("/convert")}},
				ConversionReviewVersions: []string{"v1"},
			},
		}
		if err := kube.Update(ctx, crd); err != nil {
			t.Fatalf("adding the conversion webhook to %s: %v", crd.Name, err)
		}
	}
}

// keepLogsEnv names a directory that keeps every process's whole log,
// for a passing run too.
const keepLogsEnv = "KUEUE_TEST_LOG_DIR"

// startProcess runs a binary until the test ends (process.Cmd), keeping
// its log in $KUEUE_TEST_LOG_DIR when set.
func startProcess(t *testing.T, name, bin string, env []string, args ...string) {
	t.Helper()
	process.Cmd{Name: name, Path: bin, Env: env, Args: args, KeepLogDir: os.Getenv(keepLogsEnv)}.Start(t)
}

func newScheme(t *testing.T) *k8sruntime.Scheme {
	t.Helper()
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme,
		kueue.AddToScheme, autoscalingv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	gv := schema.GroupVersion{Group: apis.Group, Version: "v1"}
	s.AddKnownTypes(gv, &karpv1.NodePool{}, &karpv1.NodePoolList{}, &karpv1.NodeClaim{}, &karpv1.NodeClaimList{})
	metav1.AddToGroupVersion(s, gv)
	return s
}

func TestKueueProvisioningRequest(t *testing.T) {
	root := repoRoot(t)
	if os.Getenv(controlplane.EnvAssets) == "" {
		// controlplane finds bin/k8s under the nearest go.mod: this
		// module's; the binaries are under the product's.
		t.Setenv(controlplane.EnvAssets, filepath.Join(root, "bin", "k8s"))
	}
	assets, err := controlplane.Assets("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager")
	if err != nil {
		t.Fatal(err)
	}
	kueueManager, kueueCRDDir, apiserver := kueueBinaries(t, root)
	tm := process.NewTimer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	// The control plane with the CRDs the chart installs (karpenter-gpu's,
	// core's karpenter.sh, the ProvisioningRequest CRD of the pinned
	// autoscaler API module) and Kueue's.
	chart := filepath.Join(root, "charts", "karpenter-gpu")
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(chart, "crds"), filepath.Join(chart, "files", "karpenter-crds")},
		CRDs:                  append(kueueCRDs(t, kueueCRDDir), provisioningrequest.CRD()),
		ErrorIfCRDPathMissing: true,
	}
	env.ControlPlane.APIServer = &envtest.APIServer{Path: apiserver}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfigPath := process.AdminKubeconfig(t, env, "kueue-e2e-admin")
	kube, err := client.New(cfg, client.Options{Scheme: newScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpState(t, kube)
		}
	})
	addConversionWebhooks(ctx, t, kube)
	// Kueue's namespace and the (empty) secret its certificate rotator
	// fills, as Kueue's manifests create them.
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kueueNamespace}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kueue-webhook-server-cert", Namespace: kueueNamespace}},
	} {
		if err := kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	tm.Mark("etcd and kube-apiserver up; karpenter.sh, karpenter-gpu, ProvisioningRequest and Kueue CRDs installed")

	for _, c := range []process.Cmd{process.KubeScheduler(assets, kubeconfigPath), process.KubeControllerManager(assets, kubeconfigPath, "job", "serviceaccount")} {
		c.KeepLogDir = os.Getenv(keepLogsEnv)
		c.Start(t)
	}

	// Kueue's manager: leader election off, its webhook server and health
	// probes on loopback, metrics off, batch/job integration only.
	kueueConfig, certDir := filepath.Join(t.TempDir(), "kueue-config.yaml"), t.TempDir()
	if err := os.WriteFile(kueueConfig, fmt.Appendf(nil, `apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: %s
health:
  healthProbeBindAddress: 127.0.0.1:%d
metrics:
  bindAddress: "0"
webhook:
  host: 127.0.0.1
  port: %d
  certDir: %s
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: true
integrations:
  frameworks: ["batch/job"]
`, kueueNamespace, process.FreePort(t), process.FreePort(t), certDir), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "kueue", kueueManager, []string{"KUBECONFIG=" + kubeconfigPath},
		"--config="+kueueConfig, "--feature-gates=VisibilityOnDemand=false", "--zap-log-level=2")
	// Kueue's certificate rotator writes the webhook certificate into the
	// secret and waits for it in its cert directory, where the kubelet
	// mounts the secret in a cluster: play that part.
	process.Eventually(t, time.Minute, "Kueue's certificate rotator to fill its secret", func() (bool, error) {
		secret := &corev1.Secret{}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: kueueNamespace, Name: "kueue-webhook-server-cert"}, secret); err != nil {
			return false, err
		}
		if len(secret.Data[corev1.TLSCertKey]) == 0 {
			return false, fmt.Errorf("secret has keys %v", lo.Keys(secret.Data))
		}
		for k, v := range secret.Data {
			if err := os.WriteFile(filepath.Join(certDir, k), v, 0o600); err != nil {
				return false, err
			}
		}
		return true, nil
	})

	controllerBin := process.BuildController(t, root)
	startProcess(t, "karpenter-gpu", controllerBin, []string{"KUBECONFIG=" + kubeconfigPath},
		"--backend=fake", "--cluster-name=kueue-e2e", "--disable-leader-election=true", "--provisioning-requests=true",
		fmt.Sprintf("--metrics-port=%d", process.FreePort(t)), fmt.Sprintf("--health-probe-port=%d", process.FreePort(t)),
		"--batch-idle-duration=1s", "--batch-max-duration=3s", "--fake-registration-delay=1s", "--log-level=debug",
		// Two attempts 1 s apart before a request is Failed, so the second
		// Job goes through Failed and Kueue's retry within the test's time.
		"--provisioning-request-max-attempts=2", "--provisioning-request-retry-backoff=1s")
	tm.Mark("kube-scheduler, kube-controller-manager (job), Kueue and karpenter-gpu started")

	// karpenter-gpu: a GPU NodePool of L4 nodes holding at most 12 GPUs.
	nodeClass := controlplane.DiscoveryGPUNodeClass("gpu", "kueue-e2e")
	nodePool := &karpv1.NodePool{
		ObjectMeta: metav1.ObjectMeta{Name: "gpu"},
		Spec: karpv1.NodePoolSpec{
			Template: karpv1.NodeClaimTemplate{Spec: karpv1.NodeClaimTemplateSpec{
				NodeClassRef: &karpv1.NodeClassReference{Group: v1alpha1.Group, Kind: "GPUNodeClass", Name: "gpu"},
				Requirements: []karpv1.NodeSelectorRequirementWithMinValues{
					{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
					{Key: karpv1.CapacityTypeLabelKey, Operator: corev1.NodeSelectorOpIn, Values: []string{karpv1.CapacityTypeOnDemand}},
					{Key: v1alpha1.LabelGPUName, Operator: corev1.NodeSelectorOpIn, Values: []string{"l4"}},
				},
			}},
			Limits: karpv1.Limits{v1alpha1.ResourceNVIDIAGPU: resource.MustParse("12")},
		},
	}
	// Kueue: one flavor, a ClusterQueue with room for both Jobs whose
	// admission check is Kueue's ProvisioningRequest check with the atomic
	// class, and a LocalQueue.
	prc := &kueue.ProvisioningRequestConfig{
		ObjectMeta: metav1.ObjectMeta{Name: "atomic-gpu"},
		Spec: kueue.ProvisioningRequestConfigSpec{
			ProvisioningClassName: autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp,
			ManagedResources:      []corev1.ResourceName{v1alpha1.ResourceNVIDIAGPU},
			// One retry with a new request after a Failed one, 1 s later
			// (Kueue's defaults: 3 retries from 60 s).
			RetryStrategy: &kueue.ProvisioningRequestRetryStrategy{BackoffLimitCount: ptr.To[int32](1), BackoffBaseSeconds: ptr.To[int32](1), BackoffMaxSeconds: ptr.To[int32](5)},
		},
	}
	check := &kueue.AdmissionCheck{
		ObjectMeta: metav1.ObjectMeta{Name: "karpenter-gpu"},
		Spec: kueue.AdmissionCheckSpec{
			ControllerName: "kueue.x-k8s.io/provisioning-request",
			Parameters:     &kueue.AdmissionCheckParametersReference{APIGroup: kueue.GroupVersion.Group, Kind: "ProvisioningRequestConfig", Name: prc.Name},
		},
	}
	flavor := &kueue.ResourceFlavor{ObjectMeta: metav1.ObjectMeta{Name: "gpu"}}
	cq := &kueue.ClusterQueue{
		ObjectMeta: metav1.ObjectMeta{Name: "training"},
		Spec: kueue.ClusterQueueSpec{
			NamespaceSelector: &metav1.LabelSelector{},
			ResourceGroups: []kueue.ResourceGroup{{
				CoveredResources: []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, v1alpha1.ResourceNVIDIAGPU},
				Flavors: []kueue.FlavorQuotas{{Name: "gpu", Resources: []kueue.ResourceQuota{
					{Name: corev1.ResourceCPU, NominalQuota: resource.MustParse("1000")},
					{Name: corev1.ResourceMemory, NominalQuota: resource.MustParse("4Ti")},
					{Name: v1alpha1.ResourceNVIDIAGPU, NominalQuota: resource.MustParse("64")},
				}}},
			}},
			AdmissionChecksStrategy: &kueue.AdmissionChecksStrategy{AdmissionChecks: []kueue.AdmissionCheckStrategyRule{{Name: kueue.AdmissionCheckReference(check.Name)}}},
		},
	}
	lq := &kueue.LocalQueue{
		ObjectMeta: metav1.ObjectMeta{Name: "training", Namespace: namespace},
		Spec:       kueue.LocalQueueSpec{ClusterQueue: kueue.ClusterQueueReference(cq.Name)},
	}
	for _, o := range []client.Object{nodeClass, nodePool, prc, check, flavor, cq, lq} {
		if err := kube.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	process.Eventually(t, 2*time.Minute, "Kueue: AdmissionCheck and ClusterQueue active", func() (bool, error) {
		if err := kube.Get(ctx, client.ObjectKeyFromObject(check), check); err != nil {
			return false, err
		}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(cq), cq); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(check.Status.Conditions, kueue.AdmissionCheckActive) &&
				meta.IsStatusConditionTrue(cq.Status.Conditions, kueue.ClusterQueueActive),
			fmt.Errorf("admission check %v, cluster queue %v", check.Status.Conditions, cq.Status.Conditions)
	})
	tm.Mark("Kueue: ProvisioningRequestConfig (best-effort-atomic-scale-up), AdmissionCheck, ResourceFlavor, ClusterQueue and LocalQueue active")
	// The NodePool is Ready before Jobs come, as in a cluster set up
	// beforehand: under load its readiness can lag the Job by seconds, and
	// a request planned before it fails its first attempt ("no ready
	// NodePool") and waits out the 30 s backoff (seen in two runs at a load
	// average of 10).
	process.Eventually(t, time.Minute, "karpenter-gpu: NodePool Ready", func() (bool, error) {
		if err := kube.Get(ctx, client.ObjectKeyFromObject(nodePool), nodePool); err != nil {
			return false, err
		}
		return nodePool.StatusConditions().Root().IsTrue(), fmt.Errorf("NodePool conditions %v", nodePool.Status.Conditions)
	})
	tm.Mark("karpenter-gpu: NodePool Ready")

	// The gang: 8 pods of one L4 GPU each, all or nothing.
	start := time.Now()
	train := gpuJob("train", 1)
	if err := kube.Create(ctx, train); err != nil {
		t.Fatal(err)
	}
	tm.Mark("8-pod GPU Job applied (suspended, queue training)")
	var (
		wl          *kueue.Workload
		pr          *autoscalingv1.ProvisioningRequest
		sawPR       bool
		unsuspended bool
	)
	process.Eventually(t, 3*time.Minute, "all 8 pods of the Job running", func() (bool, error) {
		var err error
		if wl, err = workloadOf(ctx, kube, train); err != nil || wl == nil {
			return false, fmt.Errorf("no workload yet: %v", err)
		}
		if prs, err := requestsOf(ctx, kube, wl); err == nil && len(prs) > 0 {
			pr = prs[len(prs)-1]
			if !sawPR {
				sawPR = true
				tm.Mark(fmt.Sprintf("Kueue reserved quota and created ProvisioningRequest %s (class %s)", pr.Name, pr.Spec.ProvisioningClassName))
			}
		}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(train), train); err != nil {
			return false, err
		}
		if !unsuspended && !lo.FromPtr(train.Spec.Suspend) {
			unsuspended = true
			// Kueue lets the Job go only once karpenter-gpu has provisioned
			// everything: the request is Provisioned by then.
			if pr == nil || !meta.IsStatusConditionTrue(pr.Status.Conditions, autoscalingv1.Provisioned) {
				if pr != nil {
					_ = kube.Get(ctx, client.ObjectKeyFromObject(pr), pr)
				}
				if pr == nil || !meta.IsStatusConditionTrue(pr.Status.Conditions, autoscalingv1.Provisioned) {
					t.Errorf("the Job was unsuspended before its ProvisioningRequest was Provisioned: %v", pr)
				}
			}
			tm.Mark("Kueue admitted the workload and unsuspended the Job")
		}
		pods, err := podsOf(ctx, kube, train)
		if err != nil {
			return false, err
		}
		running := lo.CountBy(pods, func(p corev1.Pod) bool { return p.Spec.NodeName != "" && p.Status.Phase == corev1.PodRunning })
		return running == gangSize, fmt.Errorf("%d/%d pods running, workload %v", running, len(pods), wl.Status.Conditions)
	})
	elapsed := time.Since(start)
	tm.Mark(fmt.Sprintf("all %d pods bound by kube-scheduler and Running: %.1fs after the Job was applied", gangSize, elapsed.Seconds()))

	// The request, the workload and the pods agree.
	if err := kube.Get(ctx, client.ObjectKeyFromObject(pr), pr); err != nil {
		t.Fatal(err)
	}
	if pr.Spec.ProvisioningClassName != autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp {
		t.Errorf("request class %q, want %q", pr.Spec.ProvisioningClassName, autoscalingv1.ProvisioningClassBestEffortAtomicScaleUp)
	}
	provisioned := meta.FindStatusCondition(pr.Status.Conditions, autoscalingv1.Provisioned)
	if provisioned == nil || provisioned.Status != metav1.ConditionTrue || provisioned.Reason != provisioningrequest.ReasonCapacityIsProvisioned {
		t.Fatalf("request %s Provisioned = %+v, want True/%s", pr.Name, provisioned, provisioningrequest.ReasonCapacityIsProvisioned)
	}
	admitted := meta.FindStatusCondition(wl.Status.Conditions, kueue.WorkloadAdmitted)
	if admitted == nil || admitted.Status != metav1.ConditionTrue {
		t.Fatalf("workload %s Admitted = %+v, want True", wl.Name, admitted)
	}
	if admitted.LastTransitionTime.Before(&provisioned.LastTransitionTime) {
		t.Errorf("workload admitted at %s, before its request was Provisioned at %s", admitted.LastTransitionTime, provisioned.LastTransitionTime)
	}
	if st := checkState(wl, check.Name); st == nil || st.State != kueue.CheckStateReady {
		t.Errorf("admission check state %+v, want Ready", st)
	}
	pods, err := podsOf(ctx, kube, train)
	if err != nil {
		t.Fatal(err)
	}
	claims := claimsOf(ctx, t, kube, string(pr.UID))
	zones := map[string]bool{}
	nodeNames := map[string]bool{}
	for _, c := range claims {
		zones[c.Labels[corev1.LabelTopologyZone]] = true
		nodeNames[c.Status.NodeName] = true
	}
	if len(zones) != 1 {
		t.Errorf("the request's %d NodeClaims span zones %v, want one", len(claims), lo.Keys(zones))
	}
	for _, p := range pods {
		// No pod existed before the capacity was there: the Job was
		// suspended until Kueue admitted it.
		if p.CreationTimestamp.Before(&provisioned.LastTransitionTime) {
			t.Errorf("pod %s created at %s, before the request was Provisioned at %s", p.Name, p.CreationTimestamp, provisioned.LastTransitionTime)
		}
		if got := p.Annotations[autoscalingv1.ProvisioningRequestPodAnnotationKey]; got != pr.Name {
			t.Errorf("pod %s consumes request %q, want %q", p.Name, got, pr.Name)
		}
		if !nodeNames[p.Spec.NodeName] {
			t.Errorf("pod %s runs on %s, not on a node launched for request %s %v", p.Name, p.Spec.NodeName, pr.Name, lo.Keys(nodeNames))
		}
	}
	types := lo.Map(claims, func(c *karpv1.NodeClaim, _ int) string { return c.Labels[corev1.LabelInstanceTypeStable] })
	sort.Strings(types)
	t.Logf("request %s: %d NodeClaims %v in %v; %s", pr.Name, len(claims), types, lo.Keys(zones), provisioned.Message)
	// The booking: the capacity was held for the gang's pods (Kueue
	// annotates them with the request's name) and is released once they
	// are all bound, without BookingExpired.
	process.Eventually(t, 30*time.Second, "the request's booking released with its pods bound", func() (bool, error) {
		if err := kube.Get(ctx, client.ObjectKeyFromObject(pr), pr); err != nil {
			return false, err
		}
		held := lo.CountBy(claimsOf(ctx, t, kube, string(pr.UID)), func(c *karpv1.NodeClaim) bool {
			_, ok := c.Annotations[karpv1.DoNotDisruptAnnotationKey]
			return ok
		})
		booking := string(pr.Status.ProvisioningClassDetails[provisioningrequest.DetailBooking])
		return booking == provisioningrequest.BookingConsumed && held == 0, fmt.Errorf("booking %q, %d NodeClaims still held", booking, held)
	})
	if meta.FindStatusCondition(pr.Status.Conditions, autoscalingv1.BookingExpired) != nil {
		t.Errorf("request %s has BookingExpired although its pods were bound", pr.Name)
	}
	tm.Mark(fmt.Sprintf("booking released (%s): the gang's nodes are ordinary nodes again", provisioningrequest.BookingConsumed))
	allClaims := &karpv1.NodeClaimList{}
	if err := kube.List(ctx, allClaims); err != nil {
		t.Fatal(err)
	}
	if len(allClaims.Items) != len(claims) {
		t.Errorf("%d NodeClaims in the cluster, want only the request's %d", len(allClaims.Items), len(claims))
	}

	// A second gang the NodePool's GPU limit (12) cannot hold next to the
	// first (8 GPUs): 8 more GPUs. Kueue reserves quota (the ClusterQueue
	// has room) but the admission check stays Pending with karpenter-gpu's
	// reason, the Job stays suspended and nothing is launched.
	tm.Lap()
	tooBig := gpuJob("train-too-big", 1)
	if err := kube.Create(ctx, tooBig); err != nil {
		t.Fatal(err)
	}
	var tooBigWL *kueue.Workload
	var tooBigPR *autoscalingv1.ProvisioningRequest
	// Every request Kueue makes for it, as last seen (Kueue deletes a
	// request once it made the next).
	seen := map[string]*autoscalingv1.ProvisioningRequest{}
	var order []string
	rejected := "" // the admission check's message once Rejected
	watchRequests := func() error {
		var err error
		if tooBigWL, err = workloadOf(ctx, kube, tooBig); err != nil || tooBigWL == nil {
			return fmt.Errorf("no workload yet: %v", err)
		}
		prs, err := requestsOf(ctx, kube, tooBigWL)
		if err != nil {
			return err
		}
		for _, p := range prs {
			if _, ok := seen[p.Name]; !ok {
				order = append(order, p.Name)
				tm.Mark(fmt.Sprintf("second Job: Kueue created ProvisioningRequest %s", p.Name))
			}
			seen[p.Name] = p
			if c := claimsOf(ctx, t, kube, string(p.UID)); len(c) != 0 {
				t.Errorf("request %s launched %d NodeClaims", p.Name, len(c))
			}
		}
		if len(prs) > 0 {
			tooBigPR = prs[len(prs)-1]
		}
		return nil
	}
	// karpenter-gpu fails the first request after its 2 attempts; Kueue
	// retries with a second request, which fails the same way; Kueue then
	// rejects the admission check and deactivates the workload. The Job is
	// never unsuspended.
	process.Eventually(t, 2*time.Minute, "the second Job's workload to be rejected after Kueue's retry", func() (bool, error) {
		if err := watchRequests(); err != nil {
			return false, err
		}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(tooBig), tooBig); err != nil {
			return false, err
		}
		if !lo.FromPtr(tooBig.Spec.Suspend) {
			t.Fatalf("the second Job was unsuspended without capacity")
		}
		st := checkState(tooBigWL, check.Name)
		if st != nil && st.State == kueue.CheckStateRejected && rejected == "" {
			rejected = st.Message
			tm.Mark(fmt.Sprintf("second Job: admission check Rejected: %q", st.Message))
		}
		// Kueue deactivates a workload whose check was rejected (and then
		// resets the check to Pending).
		return !lo.FromPtrOr(tooBigWL.Spec.Active, true) && len(order) >= 2,
			fmt.Errorf("check state %+v, active %v, requests %v", st, lo.FromPtrOr(tooBigWL.Spec.Active, true), order)
	})
	tm.Mark(fmt.Sprintf("second Job: workload deactivated after %d requests", len(order)))
	if len(order) != 2 {
		t.Errorf("requests for the second Job %v, want 2 (the first and Kueue's one retry)", order)
	}
	for i, name := range order {
		p := seen[name]
		f := meta.FindStatusCondition(p.Status.Conditions, autoscalingv1.Failed)
		if f == nil && i < len(order)-1 {
			// Kueue deleted it as soon as it was Failed and made the next
			// one (it retries only after Failed, or BookingExpired, which
			// needs Provisioned first): its last seen state was still an
			// attempt, never Provisioned.
			if c := meta.FindStatusCondition(p.Status.Conditions, autoscalingv1.Provisioned); c != nil && c.Status == metav1.ConditionTrue {
				t.Errorf("request %s was Provisioned: %+v", name, c)
			}
			t.Logf("request %s: deleted by Kueue before a poll saw its Failed; last seen: %v", name, p.Status.Conditions)
			continue
		}
		if f == nil || f.Status != metav1.ConditionTrue || f.Reason != provisioningrequest.ReasonCapacityIsNotFound ||
			!strings.Contains(f.Message, "attempt 2 of 2 failed") || !strings.Contains(f.Message, "everything launched for it was deleted") {
			t.Errorf("request %s: Failed = %+v, want True/%s after attempt 2 of 2", name, f, provisioningrequest.ReasonCapacityIsNotFound)
			continue
		}
		t.Logf("request %s: Failed: %s", name, f.Message)
	}
	// The Rejected state lasts until Kueue evicts the workload; a poll may
	// miss it, the deactivation it causes is checked above.
	if rejected != "" && !strings.Contains(rejected, "no NodePool and zone hold every pod") {
		t.Errorf("second Job's rejected admission check message %q does not give karpenter-gpu's reason", rejected)
	}
	cond := meta.FindStatusCondition(tooBigPR.Status.Conditions, autoscalingv1.Failed)
	// It stays so: still suspended, no pod, no NodeClaim of its own, the
	// first gang's nodes untouched, a while later.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := kube.Get(ctx, client.ObjectKeyFromObject(tooBig), tooBig); err != nil {
			t.Fatal(err)
		}
		if !lo.FromPtr(tooBig.Spec.Suspend) {
			t.Fatalf("the second Job was unsuspended without capacity")
		}
		time.Sleep(time.Second)
	}
	if err := kube.Get(ctx, client.ObjectKeyFromObject(tooBigWL), tooBigWL); err != nil {
		t.Fatal(err)
	}
	if meta.IsStatusConditionTrue(tooBigWL.Status.Conditions, kueue.WorkloadAdmitted) {
		t.Errorf("the second workload is Admitted")
	}
	if pods, err := podsOf(ctx, kube, tooBig); err != nil || len(pods) != 0 {
		t.Errorf("the second Job has %d pods (%v), want none", len(pods), err)
	}
	for _, name := range order {
		if c := claimsOf(ctx, t, kube, string(seen[name].UID)); len(c) != 0 {
			t.Errorf("request %s launched %d NodeClaims", name, len(c))
		}
	}
	if err := kube.List(ctx, allClaims); err != nil {
		t.Fatal(err)
	}
	var nodes corev1.NodeList
	if err := kube.List(ctx, &nodes); err != nil {
		t.Fatal(err)
	}
	if len(allClaims.Items) != len(claims) || len(nodes.Items) != len(claims) {
		t.Errorf("%d NodeClaims and %d nodes after the second Job, want the first gang's %d", len(allClaims.Items), len(nodes.Items), len(claims))
	}
	t.Logf("second Job's last request %s: %s", tooBigPR.Name, lo.FromPtr(cond).Message)
	tm.Mark("second Job still suspended, its workload deactivated, nothing launched for it")
	t.Logf("RESULT: time to all %d pods Running = %.1fs (Job applied -> every pod Running)", gangSize, elapsed.Seconds())
}

// gpuJob is a suspended Job of gangSize pods with gpus L4 GPUs each, in the
// LocalQueue "training".
func gpuJob(name string, gpus int64) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{queueLabel: "training"}},
		Spec: batchv1.JobSpec{
			Parallelism:  lo.ToPtr(int32(gangSize)),
			Completions:  lo.ToPtr(int32(gangSize)),
			Suspend:      lo.ToPtr(true),
			BackoffLimit: lo.ToPtr(int32(0)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					AutomountServiceAccountToken: lo.ToPtr(false),
					NodeSelector:                 map[string]string{v1alpha1.LabelGPUName: "l4"},
					Tolerations:                  []corev1.Toleration{{Key: v1alpha1.ResourceNVIDIAGPU, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
					Containers: []corev1.Container{{Name: "worker", Image: "registry.k8s.io/pause:3.10", Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"), v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
						Limits:   corev1.ResourceList{v1alpha1.ResourceNVIDIAGPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
					}}},
				},
			},
		},
	}
}

// workloadOf is the Workload Kueue created for job (owned by it).
func workloadOf(ctx context.Context, kube client.Client, job *batchv1.Job) (*kueue.Workload, error) {
	if job.UID == "" {
		if err := kube.Get(ctx, client.ObjectKeyFromObject(job), job); err != nil {
			return nil, err
		}
	}
	list := &kueue.WorkloadList{}
	if err := kube.List(ctx, list, client.InNamespace(job.Namespace)); err != nil {
		return nil, err
	}
	for i := range list.Items {
		if lo.ContainsBy(list.Items[i].OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == job.UID }) {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// requestsOf are the ProvisioningRequests Kueue created for wl, oldest
// first.
func requestsOf(ctx context.Context, kube client.Client, wl *kueue.Workload) ([]*autoscalingv1.ProvisioningRequest, error) {
	list := &autoscalingv1.ProvisioningRequestList{}
	if err := kube.List(ctx, list, client.InNamespace(wl.Namespace)); err != nil {
		return nil, err
	}
	var out []*autoscalingv1.ProvisioningRequest
	for i := range list.Items {
		if lo.ContainsBy(list.Items[i].OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == wl.UID }) {
			out = append(out, &list.Items[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreationTimestamp.Before(&out[j].CreationTimestamp) })
	return out, nil
}

func checkState(wl *kueue.Workload, name string) *kueue.AdmissionCheckState {
	for i := range wl.Status.AdmissionChecks {
		if string(wl.Status.AdmissionChecks[i].Name) == name {
			return &wl.Status.AdmissionChecks[i]
		}
	}
	return nil
}

func podsOf(ctx context.Context, kube client.Client, job *batchv1.Job) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := kube.List(ctx, &pods, client.InNamespace(job.Namespace), client.MatchingLabels{"app": job.Name}); err != nil {
		return nil, err
	}
	return pods.Items, nil
}

func claimsOf(ctx context.Context, t *testing.T, kube client.Client, uid string) []*karpv1.NodeClaim {
	t.Helper()
	list := &karpv1.NodeClaimList{}
	if err := kube.List(ctx, list, client.MatchingLabels{provisioningrequest.LabelRequest: uid}); err != nil {
		t.Fatal(err)
	}
	return lo.ToSlicePtr(list.Items)
}

// dumpState logs what a person would look at with kubectl when the run
// fails.
func dumpState(t *testing.T, kube client.Client) {
	ctx := context.Background()
	var wls kueue.WorkloadList
	var prs autoscalingv1.ProvisioningRequestList
	var claims karpv1.NodeClaimList
	var pods corev1.PodList
	_ = kube.List(ctx, &wls)
	_ = kube.List(ctx, &prs)
	_ = kube.List(ctx, &claims)
	_ = kube.List(ctx, &pods)
	for _, w := range wls.Items {
		t.Logf("workload %s conditions=%v checks=%v", w.Name,
			lo.Map(w.Status.Conditions, func(c metav1.Condition, _ int) string { return c.Type + "=" + string(c.Status) + "(" + c.Message + ")" }),
			lo.Map(w.Status.AdmissionChecks, func(c kueue.AdmissionCheckState, _ int) string {
				return string(c.Name) + "=" + string(c.State) + "(" + c.Message + ")"
			}))
	}
	for _, p := range prs.Items {
		t.Logf("provisioningrequest %s class=%s conditions=%v details=%v", p.Name, p.Spec.ProvisioningClassName,
			lo.Map(p.Status.Conditions, func(c metav1.Condition, _ int) string {
				return c.Type + "=" + string(c.Status) + "/" + c.Reason + "(" + c.Message + ")"
			}),
			p.Status.ProvisioningClassDetails)
	}
	for _, c := range claims.Items {
		t.Logf("nodeclaim %s type=%s zone=%s node=%s", c.Name, c.Labels[corev1.LabelInstanceTypeStable], c.Labels[corev1.LabelTopologyZone], c.Status.NodeName)
	}
	for _, p := range pods.Items {
		t.Logf("pod %s node=%q phase=%s", p.Name, p.Spec.NodeName, p.Status.Phase)
	}
}
