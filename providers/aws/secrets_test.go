package aws_test

import (
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/go-logr/zapr"
	"github.com/samber/lo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/log"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	gpucp "github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/orphans"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/test/syncbuf"
)

const (
	canaryAccessKey = "AKIACANARYAWSBACKEND"
	canarySecret    = "canary/secret+aws/Zq8v7Yw2PqLk0r4sT1uV6xW9yZ"
	canaryUserData  = "#!/bin/bash\necho aws-userdata-canary-7d2e > /etc/canary"
)

// TestNoSecretsInLogsOrErrors runs the AWS backend with credentials from
// the default chain (environment) and a node class whose user data is a
// canary through resolution, validation (refused), launches (throttled,
// refused, failed, batched), lookups, terminations and orphan collection,
// logging at every verbosity into a buffer, and checks that neither the
// logs nor any returned error carry the credentials, a request signature or
// the user data.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", canaryAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", canarySecret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	logs := &syncbuf.Buffer{} // the backend launches concurrently
	enc := zap.NewProductionEncoderConfig()
	logger := zapr.NewLogger(zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), logs, zapcore.Level(-127))))
	ctx := log.IntoContext(context.Background(), logger)

	clk := clocktesting.NewFakeClock(epoch)
	srv := fakeaws.New(inventory())
	t.Cleanup(srv.Close)
	srv.SetClock(clk.Now)
	cfg, err := awsbackend.LoadConfig(ctx, awsbackend.ConfigOptions{
		Region: "us-east-1",
		Retry:  awsbackend.RetryOptions{MaxAttempts: 3, MaxBackoff: time.Millisecond},
		Extra:  []func(*config.LoadOptions) error{config.WithEC2IMDSClientEnableState(imds.ClientDisabled)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if creds, err := cfg.Credentials.Retrieve(ctx); err != nil || creds.AccessKeyID != canaryAccessKey {
		t.Fatalf("the default chain did not take the environment's credentials: %v", err)
	}
	clients := awsbackend.NewClients(cfg, srv.URL)
	backend, err := awsbackend.NewBackend(ctx, awsbackend.Options{Region: "us-east-1", ClusterName: cluster,
		ClusterEndpoint: "https://api.unit.example", ClusterCABundle: "Q0E=", KubernetesVersion: k8sVersion, Clock: clk,
		EC2: clients.EC2, SSM: clients.SSM, Pricing: clients.Pricing, IAM: clients.IAM})
	if err != nil {
		t.Fatal(err)
	}
	kube := fake.NewClientBuilder().WithStatusSubresource(&v1alpha1.GPUNodeClass{}, &karpv1.NodeClaim{}).Build()
	cp, err := gpucp.New(gpucp.Options{KubeClient: kube, Backend: backend, Clock: clk, ClusterName: cluster})
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	nc := nodeClass(func(nc *v1alpha1.GPUNodeClass) { nc.Spec.UserData = lo.ToPtr(canaryUserData) })
	srv.Fail("DescribeSubnets", "UnauthorizedOperation", "You are not authorized to perform this operation.", 10)
	keep(backend.Resolve(ctx, nc))
	srv.ClearFaults()
	srv.Throttle("DescribeSecurityGroups", 1) // retried
	keep(backend.Resolve(ctx, nc))
	srv.Fail("RunInstances", "UnauthorizedOperation", "You are not authorized to perform this operation.", 1)
	keep(backend.Validate(ctx, nc))
	keep(backend.Validate(ctx, nc))
	if err := kube.Create(ctx, nc.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	stored := &v1alpha1.GPUNodeClass{}
	if err := kube.Get(ctx, client.ObjectKeyFromObject(nc), stored); err != nil {
		t.Fatal(err)
	}
	stored.Status = nc.Status
	if err := kube.Status().Update(ctx, stored); err != nil {
		t.Fatal(err)
	}

	srv.Throttle("CreateFleet", 2)
	srv.InsufficientCapacity(fakeaws.Offering{InstanceType: "g4dn.xlarge", Zone: "us-east-1a", CapacityType: fakeaws.OnDemand}, "")
	var launched []*karpv1.NodeClaim
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, name := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := cp.Create(ctx, claim(name, 1, req(karpv1.CapacityTypeLabelKey, "In", karpv1.CapacityTypeOnDemand)))
			mu.Lock()
			defer mu.Unlock()
			keep(err)
			if got != nil {
				launched = append(launched, got)
			}
		}()
	}
	wg.Wait()
	srv.Fail("CreateFleet", "InvalidParameterValue", "Invalid launch template data.", 1)
	_, err = cp.Create(ctx, claim("d", 1, req(karpv1.CapacityTypeLabelKey, "In", karpv1.CapacityTypeOnDemand)))
	keep(err)
	if len(launched) == 0 {
		t.Fatalf("nothing launched; errors %v", errs)
	}
	_, err = cp.Get(ctx, launched[0].Status.ProviderID)
	keep(err)
	keep(cp.Delete(ctx, launched[0]))
	keep(cp.Delete(ctx, launched[0]))
	_, err = cp.List(ctx)
	keep(err)
	clk.Step(time.Hour)
	_, err = orphans.NewController(backend.OrphanOptions(orphans.Options{KubeClient: kube})).Collect(ctx)
	keep(err)

	logText := logs.String()
	all := logText + "\n" + strings.Join(lo.Map(errs, func(e error, _ int) string { return e.Error() }), "\n")
	if len(errs) == 0 || !strings.Contains(logText, "resolving GPUNodeClass") {
		t.Fatalf("the run produced no error or no log to check (%d errors, %d log bytes)", len(errs), len(logText))
	}
	for name, re := range map[string]*regexp.Regexp{
		"access key":            regexp.MustCompile(regexp.QuoteMeta(canaryAccessKey)),
		"secret key":            regexp.MustCompile(regexp.QuoteMeta(canarySecret)),
		"user data":             regexp.MustCompile("aws-userdata-canary"),
		"base64 user data":      regexp.MustCompile(regexp.QuoteMeta(base64.StdEncoding.EncodeToString([]byte(canaryUserData))[:16])),
		"any AWS access key ID": regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`),
		"request signature":     regexp.MustCompile(`(?i)signature=|x-amz-security-token|authorization:`),
		"aws_secret_access_key": regexp.MustCompile(`(?i)aws_secret_access_key`),
	} {
		if m := re.FindString(all); m != "" {
			t.Errorf("%s found in the backend's logs or errors: %q", name, m)
		}
	}
	t.Logf("%d log bytes and %d errors scanned", len(logText), len(errs))
	if testing.Verbose() {
		t.Log(all)
	}
}
