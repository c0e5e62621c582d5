package aws

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// RetryOptions tune the SDK retryer. Zero values take the defaults.
type RetryOptions struct {
	// MaxAttempts per call, the first included. Default 10: EC2 throttles
	// per account and per action, and a launch that gives up early is a
	// NodeClaim deleted and retried from scratch.
	MaxAttempts int
	// MaxBackoff caps the exponential, jittered backoff. Default 20s.
	MaxBackoff time.Duration
}

// ConfigOptions configure LoadConfig.
type ConfigOptions struct {
	// Region is the EC2 region; empty uses AWS_REGION and the shared config.
	Region string
	Retry  RetryOptions
	// HTTPTimeout bounds one HTTP attempt. Default 60s.
	HTTPTimeout time.Duration
	// Extra load options (tests pass static credentials).
	Extra []func(*config.LoadOptions) error
}

// NewRetryer returns the retryer every client uses: the SDK's standard
// retryer (throttling codes such as RequestLimitExceeded, 5xx and transient
// network errors are retried with exponential jittered backoff), with more
// attempts and without the client-side retry quota, so a burst of throttling
// slows the controller down rather than failing launches outright.
func NewRetryer(o RetryOptions) func() awssdk.Retryer {
	attempts := o.MaxAttempts
	if attempts <= 0 {
		attempts = 10
	}
	backoff := o.MaxBackoff
	if backoff <= 0 {
		backoff = 20 * time.Second
	}
	return func() awssdk.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = attempts
			so.MaxBackoff = backoff
			so.Backoff = retry.NewExponentialJitterBackoff(backoff)
			so.RateLimiter = ratelimit.None
		})
	}
}

// LoadConfig loads the default credential chain (environment, IRSA web
// identity, EKS Pod Identity, shared config, IMDS) with this package's
// retryer and HTTP timeout.
func LoadConfig(ctx context.Context, o ConfigOptions) (awssdk.Config, error) {
	timeout := o.HTTPTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(NewRetryer(o.Retry)),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(timeout)),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, append(opts, o.Extra...)...)
	if err != nil {
		return awssdk.Config{}, fmt.Errorf("loading AWS config, %w", err)
	}
	if cfg.Region == "" {
		return awssdk.Config{}, fmt.Errorf("no AWS region: set --region or AWS_REGION")
	}
	return cfg, nil
}

// Clients are the SDK clients a Backend uses.
type Clients struct {
	EC2     *ec2.Client
	SSM     *ssm.Client
	Pricing *pricing.Client
	IAM     *iam.Client
}

// PricingRegion returns the region of the Pricing API endpoint closest to
// region (the API is served from a few regions only).
func PricingRegion(region string) string {
	switch {
	case len(region) >= 3 && region[:3] == "ap-":
		return "ap-south-1"
	case len(region) >= 3 && region[:3] == "eu-", len(region) >= 3 && region[:3] == "me-", len(region) >= 3 && region[:3] == "af-":
		return "eu-central-1"
	case len(region) >= 3 && region[:3] == "cn-":
		return "cn-northwest-1"
	default:
		return "us-east-1"
	}
}

// NewClients builds the clients from cfg. endpoint, when set, overrides
// every service endpoint (tests point it at providers/aws/fakeaws).
func NewClients(cfg awssdk.Config, endpoint string) Clients {
	var base *string
	if endpoint != "" {
		base = awssdk.String(endpoint)
	}
	return Clients{
		EC2: ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = base }),
		SSM: ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = base }),
		Pricing: pricing.NewFromConfig(cfg, func(o *pricing.Options) {
			o.BaseEndpoint = base
			o.Region = PricingRegion(cfg.Region)
		}),
		IAM: iam.NewFromConfig(cfg, func(o *iam.Options) { o.BaseEndpoint = base }),
	}
}

// KubernetesVersion returns the API server's "major.minor" (e.g. "1.33"),
// which names the EKS image SSM parameters.
func KubernetesVersion(d discovery.ServerVersionInterface) (string, error) {
	v, err := d.ServerVersion()
	if err != nil {
		return "", fmt.Errorf("getting the Kubernetes version, %w", err)
	}
	major := strings.TrimRight(v.Major, "+")
	minor := strings.TrimRight(v.Minor, "+")
	if major == "" || minor == "" {
		return "", fmt.Errorf("the API server reported no version (%q.%q)", v.Major, v.Minor)
	}
	return major + "." + minor, nil
}

// CABundle returns the base64 PEM certificate authority of a rest config
// (from CAData, or the in-cluster CAFile), as nodes need it to trust the API
// server.
func CABundle(cfg *rest.Config) (string, error) {
	data := cfg.CAData
	if len(data) == 0 && cfg.CAFile != "" {
		var err error
		if data, err = os.ReadFile(cfg.CAFile); err != nil {
			return "", fmt.Errorf("reading the cluster CA, %w", err)
		}
	}
	if len(data) == 0 {
		return "", fmt.Errorf("the rest config has no certificate authority")
	}
	return base64.StdEncoding.EncodeToString(data), nil
}
