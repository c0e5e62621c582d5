package envtest_test

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	controllerruntime "sigs.k8s.io/controller-runtime"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/metrics/server"
	karpv1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/events"
	. "sigs.k8s.io/karpenter/pkg/test/expectations"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/apis/v1alpha1"
	"github.com/karpenter-gpu/karpenter-gpu/pkg/controllers/interruption"
	awsbackend "github.com/karpenter-gpu/karpenter-gpu/providers/aws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/fakeaws"
	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/sqs"
	"github.com/karpenter-gpu/karpenter-gpu/test/awsenv"
	"github.com/karpenter-gpu/karpenter-gpu/test/controlplane"
)

// The interruption handler end to end: EventBridge events in an SQS queue
// of the in-process endpoint, read by the production SQS client, acted on
// against the real API server, and the NodeClaim finalized by core's
// lifecycle controller through the AWS backend (TerminateInstances).
var _ = Describe("Interruption handling (SQS, fake endpoint)", func() {
	var (
		nc        *v1alpha1.GPUNodeClass
		queueName string
		ctrl      *interruption.Controller
		rec       *record.FakeRecorder
		seq       int
	)
	BeforeEach(func() {
		nc = core.ResolvedNodeClass(ctx, gpuNodeClass())
		ExpectApplied(ctx, env.Client, gpuNodePool(nc))

		seq++
		queueName = fmt.Sprintf("karpenter-gpu-%s-%d", clusterName, seq)
		srv.CreateQueue(queueName)
		cfg, err := awsenv.Config(ctx, awsbackend.RetryOptions{MaxAttempts: 3, MaxBackoff: time.Millisecond})
		Expect(err).ToNot(HaveOccurred())
		// No long poll: every spec sends its messages before polling.
		q, err := sqs.New(sqs.Options{Client: sqs.NewClient(cfg, srv.URL), QueueName: queueName, WaitTime: -1})
		Expect(err).ToNot(HaveOccurred())
		rec = record.NewFakeRecorder(100)
		ctrl = interruption.NewController(interruption.Options{Clock: env.Clock, KubeClient: env.Client, Recorder: events.NewRecorder(rec),
			Queue: q, Unavailable: cloudProvider.Unavailable()})
	})

	send := func(body string) {
		GinkgoHelper()
		_, err := srv.SendMessage(queueName, body)
		Expect(err).ToNot(HaveOccurred())
	}
	poll := func(want int) {
		GinkgoHelper()
		n, err := ctrl.Poll(ctx)
		Expect(err).ToNot(HaveOccurred())
		Expect(n).To(Equal(want))
	}
	reasons := func() []string {
		var out []string
		for {
			select {
			case e := <-rec.Events:
				out = append(out, strings.Fields(e)[1])
			default:
				return out
			}
		}
	}
	running := func(c *karpv1.NodeClaim) {
		GinkgoHelper()
		latest := ExpectExists(ctx, env.Client, c)
		Expect(latest.DeletionTimestamp.IsZero()).To(BeTrue(), "NodeClaim %s is being deleted", c.Name)
		Expect(instanceOf(c.Status.ProviderID).State).To(BeElementOf("pending", "running"))
	}

	It("deletes the NodeClaim of a spot-interrupted instance, which core then terminates, and deletes the message", func() {
		c := provisionAndLaunch(gpuPod(1))[0]
		inst := instanceOf(c.Status.ProviderID)
		send(fakeaws.SpotInterruptionEvent("us-east-1", inst.ID, env.Clock.Now()))
		poll(1)

		Expect(ExpectExists(ctx, env.Client, c).DeletionTimestamp.IsZero()).To(BeFalse(), "the NodeClaim should be deleting")
		Expect(srv.QueueMessages(queueName)).To(BeEmpty())
		Expect(reasons()).To(Equal([]string{"SpotInterrupted", "TerminatingOnInterruption"}))
		Expect(cloudProvider.Unavailable().IsUnavailable(inst.InstanceType, inst.Zone, karpv1.CapacityTypeSpot)).To(BeTrue())
		// Core's lifecycle controller finalizes it through the AWS backend.
		for range 3 {
			ExpectObjectReconciled(ctx, env.Client, lifecycleCtrl, c)
		}
		ExpectNotFound(ctx, env.Client, c)
		Expect(instanceOf(c.Status.ProviderID).State).To(BeElementOf("shutting-down", "terminated"))
	})

	It("deletes messages about instances that are not karpenter-gpu's, and malformed ones, changing nothing", func() {
		c := provisionAndLaunch(gpuPod(1))[0]
		// An instance of Karpenter for AWS: its NodeClaim names an EC2NodeClass.
		foreignID := srv.AddInstance(fakeaws.Instance{InstanceType: "g6.xlarge", Zone: "us-east-1a", Lifecycle: "spot"})
		foreign := &karpv1.NodeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "karpenter-aws-node"},
			Spec: karpv1.NodeClaimSpec{
				NodeClassRef: &karpv1.NodeClassReference{Group: "karpenter.k8s.aws", Kind: "EC2NodeClass", Name: "default"},
				Requirements: []karpv1.NodeSelectorRequirementWithMinValues{{Key: corev1.LabelArchStable, Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}}},
			},
			Status: karpv1.NodeClaimStatus{ProviderID: "aws:///us-east-1a/" + foreignID},
		}
		ExpectApplied(ctx, env.Client, foreign)
		Expect(ExpectExists(ctx, env.Client, foreign).Status.ProviderID).To(Equal("aws:///us-east-1a/" + foreignID))
		requests := len(srv.Requests("TerminateInstances"))

		send(fakeaws.SpotInterruptionEvent("us-east-1", "i-00000000000000abc", env.Clock.Now()))
		send(fakeaws.SpotInterruptionEvent("us-east-1", foreignID, env.Clock.Now()))
		send(fakeaws.StateChangeEvent("us-east-1", foreignID, "terminated", env.Clock.Now()))
		send("not an event")
		poll(4)

		Expect(srv.QueueMessages(queueName)).To(BeEmpty())
		running(c)
		latest := ExpectExists(ctx, env.Client, foreign)
		Expect(latest.DeletionTimestamp.IsZero()).To(BeTrue(), "Karpenter for AWS's NodeClaim was deleted")
		Expect(reasons()).To(BeEmpty())
		Expect(srv.Requests("TerminateInstances")).To(HaveLen(requests))
		Expect(cloudProvider.Unavailable().IsUnavailable("g6.xlarge", "us-east-1a", karpv1.CapacityTypeSpot)).To(BeFalse())
		ExpectDeleted(ctx, env.Client, foreign)
	})

	It("records a rebalance recommendation as an event and deletes nothing", func() {
		c := provisionAndLaunch(gpuPod(1))[0]
		inst := instanceOf(c.Status.ProviderID)
		send(fakeaws.RebalanceRecommendationEvent("us-east-1", inst.ID, env.Clock.Now()))
		send(fakeaws.StateChangeEvent("us-east-1", inst.ID, "running", env.Clock.Now()))
		poll(2)

		Expect(srv.QueueMessages(queueName)).To(BeEmpty())
		running(c)
		Expect(reasons()).To(Equal([]string{"SpotRebalanceRecommendation"}))
	})

	It("runs as a singleton under a controller manager, long-polling the queue", func() {
		c := provisionAndLaunch(gpuPod(1))[0]
		inst := instanceOf(c.Status.ProviderID)
		cfg, err := awsenv.Config(ctx, awsenv.DefaultRetry)
		Expect(err).ToNot(HaveOccurred())
		q, err := sqs.New(sqs.Options{Client: sqs.NewClient(cfg, srv.URL), QueueName: queueName, WaitTime: 2 * time.Second})
		Expect(err).ToNot(HaveOccurred())
		managed := interruption.NewController(interruption.Options{Clock: env.Clock, KubeClient: env.Client, Recorder: events.NewRecorder(rec), Queue: q})
		mgr, err := controllerruntime.NewManager(env.Config, controllerruntime.Options{
			Scheme: env.Client.Scheme(), Metrics: server.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
			Controller: ctrlconfig.Controller{SkipNameValidation: lo.ToPtr(true)},
		})
		Expect(err).ToNot(HaveOccurred())
		Expect(managed.Register(ctx, mgr)).To(Succeed())
		controlplane.RunManager(ctx, mgr, 10*time.Second)

		// The first poll is waiting on the empty queue; the message ends it.
		Eventually(func() int { return len(srv.Requests("ReceiveMessage")) }, 5*time.Second).Should(BeNumerically(">", 0))
		send(fakeaws.SpotInterruptionEvent("us-east-1", inst.ID, env.Clock.Now()))
		Eventually(func() bool { return !ExpectExists(ctx, env.Client, c).DeletionTimestamp.IsZero() }, 10*time.Second).Should(BeTrue())
		Eventually(func() []fakeaws.SQSMessage { return srv.QueueMessages(queueName) }, 5*time.Second).Should(BeEmpty())
	})

	It("keeps a message whose NodeClaim cannot be handled yet and handles it when received again", func() {
		c := provisionAndLaunch(gpuPod(1))[0]
		inst := instanceOf(c.Status.ProviderID)
		send(fakeaws.ScheduledChangeEvent("us-east-1", env.Clock.Now(), inst.ID))
		srv.Fail("DeleteMessage", "AccessDenied", "not authorized to perform sqs:DeleteMessage", 1)
		_, err := ctrl.Poll(ctx)
		Expect(err).To(MatchError(ContainSubstring("sqs:DeleteMessage")))
		Expect(srv.QueueMessages(queueName)).To(HaveLen(1), "the message should stay after a failed delete")
		Expect(ExpectExists(ctx, env.Client, c).DeletionTimestamp.IsZero()).To(BeFalse())

		// Received again after the visibility timeout: the NodeClaim is
		// already deleting, so the message is just deleted.
		env.Clock.Step(fakeaws.DefaultSQSVisibilityTimeout + time.Second)
		poll(1)
		Expect(srv.QueueMessages(queueName)).To(BeEmpty())
		Expect(lo.Uniq(reasons())).To(ContainElement("InstanceScheduledChange"))
	})
})
