package awsutil_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
	"github.com/samber/lo"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/karpenter-gpu/karpenter-gpu/providers/aws/internal/awsutil"
)

func TestErrorClassification(t *testing.T) {
	apiErr := func(code string) error {
		return fmt.Errorf("describing, %w", &smithy.GenericAPIError{Code: code, Message: "m"})
	}
	for _, tc := range []struct {
		code                    string
		notFound, capacity, ltg bool
	}{
		{"InvalidSubnetID.NotFound", true, false, false},
		{"NoSuchEntity", true, false, false},
		{"ParameterNotFound", true, false, false},
		{"InsufficientInstanceCapacity", false, true, false},
		{"ReservationCapacityExceeded", false, true, false},
		{"InvalidLaunchTemplateName.NotFoundException", true, false, true},
		{"UnauthorizedOperation", false, false, false},
	} {
		err := apiErr(tc.code)
		if got := awsutil.ErrorCode(err); got != tc.code {
			t.Errorf("ErrorCode = %q, want %q", got, tc.code)
		}
		if awsutil.IsNotFound(err) != tc.notFound || awsutil.IsCapacityCode(tc.code) != tc.capacity || awsutil.IsLaunchTemplateNotFound(tc.code) != tc.ltg {
			t.Errorf("%s: not found %v, capacity %v, template gone %v", tc.code, awsutil.IsNotFound(err), awsutil.IsCapacityCode(tc.code), awsutil.IsLaunchTemplateNotFound(tc.code))
		}
	}
	if awsutil.ErrorCode(errors.New("plain")) != "" || awsutil.IsNotFound(nil) {
		t.Error("a non-API error has a code")
	}
}

func TestRefreshedServesTheLastKnownGoodValue(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	r := awsutil.NewRefreshed[int](clk, time.Hour, time.Minute)
	ctx := context.Background()
	calls := 0
	fail := errors.New("down")
	fetch := func(result int, err error) func(context.Context, int, bool) (int, error) {
		return func(_ context.Context, old int, ok bool) (int, error) {
			calls++
			return old + result, err
		}
	}
	if _, ok, err := r.Get(ctx, fetch(0, fail)); ok || err == nil {
		t.Fatalf("first failed fetch: ok %v err %v", ok, err)
	}
	if _, _, err := r.Get(ctx, fetch(1, nil)); err == nil || calls != 1 {
		t.Fatalf("fetched again before the retry interval (%d calls, err %v)", calls, err)
	}
	clk.Step(time.Minute)
	if v, ok, err := r.Get(ctx, fetch(1, nil)); v != 1 || !ok || err != nil {
		t.Fatalf("after the retry interval = %d %v %v", v, ok, err)
	}
	if v, _, _ := r.Get(ctx, fetch(10, nil)); v != 1 || calls != 2 {
		t.Fatalf("within the interval = %d after %d calls, want the cached 1 after 2", v, calls)
	}
	clk.Step(time.Hour)
	if v, ok, err := r.Get(ctx, fetch(5, fail)); v != 1 || !ok || err == nil {
		t.Fatalf("failed refresh = %d %v %v, want the last good 1 with the error", v, ok, err)
	}
	r.Invalidate()
	if v, _, _ := r.Get(ctx, fetch(2, nil)); v != 3 {
		t.Fatalf("after Invalidate = %d, want a fetch merged into the old value (3)", v)
	}
	if v, ok := r.Peek(); v != 3 || !ok {
		t.Fatalf("Peek = %d %v", v, ok)
	}
}

func TestTermFilters(t *testing.T) {
	show := func(fs []ec2types.Filter) []string {
		return lo.Map(fs, func(f ec2types.Filter, _ int) string { return *f.Name + "=" + f.Values[0] })
	}
	for _, tc := range []struct {
		name                string
		nameField, id, term string
		tags                map[string]string
		want                []string
	}{
		{name: "the ID wins", nameField: "group-name", id: "sg-1", term: "nodes", tags: map[string]string{"a": "x"}, want: []string{"group-id=sg-1"}},
		{name: "then the name", nameField: "group-name", term: "nodes", tags: map[string]string{"a": "x"}, want: []string{"group-name=nodes"}},
		{name: "a name where the resource has none is no term", tags: nil, term: "nodes"},
		{name: "then the tags", tags: map[string]string{"a": "x"}, want: []string{"tag:a=x"}},
		{name: "an empty term selects nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := awsutil.TermFilters("group-id", tc.id, tc.nameField, tc.term, tc.tags)
			if fmt.Sprint(show(got)) != fmt.Sprint(tc.want) || (tc.want == nil) != (got == nil) {
				t.Errorf("filters = %v (nil: %v), want %v", show(got), got == nil, tc.want)
			}
		})
	}
}

func TestTags(t *testing.T) {
	got := lo.Map(awsutil.TagFilters(map[string]string{"b": "*", "a": "x"}), func(f ec2types.Filter, _ int) string { return *f.Name + "=" + f.Values[0] })
	if diff := cmp.Diff([]string{"tag:a=x", "tag-key=b"}, got); diff != "" {
		t.Errorf("filters (-want +got):\n%s", diff)
	}
	owned := awsutil.OwnedTags("c1", map[string]string{"team": "ml"})
	if diff := cmp.Diff(map[string]string{"team": "ml", "kubernetes.io/cluster/c1": "owned", "karpenter-gpu.io/cluster": "c1"}, owned); diff != "" {
		t.Errorf("owned tags (-want +got):\n%s", diff)
	}
	if keys := lo.Map(awsutil.ToEC2Tags(owned), func(tg ec2types.Tag, _ int) string { return *tg.Key }); !cmp.Equal(keys, []string{"karpenter-gpu.io/cluster", "kubernetes.io/cluster/c1", "team"}) {
		t.Errorf("EC2 tags not sorted by key: %v", keys)
	}
	// Karpenter for AWS's keys never reach EC2, whoever asks for them.
	owned = awsutil.OwnedTags("c1", map[string]string{"team": "ml", "eks:eks-cluster-name": "c1", "karpenter.k8s.aws/ec2nodeclass": "default", "karpenter.k8s.awsx": "kept"})
	if diff := cmp.Diff(map[string]string{"team": "ml", "karpenter.k8s.awsx": "kept", "kubernetes.io/cluster/c1": "owned", "karpenter-gpu.io/cluster": "c1"}, owned); diff != "" {
		t.Errorf("owned tags with Karpenter for AWS's keys (-want +got):\n%s", diff)
	}
}
