package awsutil

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/samber/lo"

	"github.com/karpenter-gpu/karpenter-gpu/pkg/cloudprovider"
)

// TagFilters turns selector tags into EC2 filters; "*" matches any value.
func TagFilters(tags map[string]string) []ec2types.Filter {
	keys := lo.Keys(tags)
	sort.Strings(keys)
	return lo.Map(keys, func(k string, _ int) ec2types.Filter {
		if tags[k] == "*" {
			return ec2types.Filter{Name: aws.String("tag-key"), Values: []string{k}}
		}
		return ec2types.Filter{Name: aws.String("tag:" + k), Values: []string{tags[k]}}
	})
}

// TermFilters are the EC2 filters of one selector term: its ID (filter
// idField), else its name (filter nameField; "" for resources selected
// without one), else its tags (TagFilters). A term with none of them
// selects nothing: nil.
func TermFilters(idField, id, nameField, name string, tags map[string]string) []ec2types.Filter {
	switch {
	case id != "":
		return []ec2types.Filter{{Name: aws.String(idField), Values: []string{id}}}
	case nameField != "" && name != "":
		return []ec2types.Filter{{Name: aws.String(nameField), Values: []string{name}}}
	case len(tags) > 0:
		return TagFilters(tags)
	}
	return nil
}

// ClusterTagKey is the tag the AWS cloud controller and load balancer
// controllers use to find a cluster's instances.
func ClusterTagKey(cluster string) string { return "kubernetes.io/cluster/" + cluster }

// KarpenterAWSClusterTagKey is the tag Karpenter for AWS puts on what it
// creates, with the cluster's name as value, and requires in every query
// for what it owns. On a launch template it alone is enough: Karpenter for
// AWS v1.15 caches every launch template carrying it at start and deletes
// each when its cache entry expires. karpenter-gpu never sets it.
const KarpenterAWSClusterTagKey = "eks:eks-cluster-name"

// KarpenterAWSTagPrefix is Karpenter for AWS's tag domain; with
// karpenter.k8s.aws/ec2nodeclass (and karpenter.sh/nodepool, which
// karpenter-gpu sets too) an instance is one Karpenter for AWS garbage
// collects when none of its NodeClaims holds it.
const KarpenterAWSTagPrefix = "karpenter.k8s.aws/"

// KarpenterAWSTagKey reports whether k is a tag key karpenter-gpu must not
// put on anything it creates, because Karpenter for AWS running in the same
// cluster would take the resource for its own.
func KarpenterAWSTagKey(k string) bool {
	return k == KarpenterAWSClusterTagKey || strings.HasPrefix(k, KarpenterAWSTagPrefix)
}

// OwnedTags adds the cluster ownership tags to tags and leaves out
// Karpenter for AWS's keys (KarpenterAWSTagKey), whatever tags holds:
// node class validation reports them, this keeps them off EC2.
func OwnedTags(cluster string, tags map[string]string) map[string]string {
	return lo.Assign(lo.OmitBy(tags, func(k, _ string) bool { return KarpenterAWSTagKey(k) }), map[string]string{
		ClusterTagKey(cluster):   "owned",
		cloudprovider.TagCluster: cluster,
	})
}

// ToEC2Tags converts tags, sorted by key.
func ToEC2Tags(tags map[string]string) []ec2types.Tag {
	keys := lo.Keys(tags)
	sort.Strings(keys)
	return lo.Map(keys, func(k string, _ int) ec2types.Tag {
		return ec2types.Tag{Key: aws.String(k), Value: aws.String(tags[k])}
	})
}

// ShortHash is the first 16 hex digits of the SHA-256 of s.
func ShortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}

// KubeArch maps an EC2 architecture onto kubernetes.io/arch.
func KubeArch(ec2arch string) string {
	switch ec2arch {
	case "x86_64", "x86_64_mac":
		return "amd64"
	case "arm64", "arm64_mac":
		return "arm64"
	}
	return ec2arch
}
