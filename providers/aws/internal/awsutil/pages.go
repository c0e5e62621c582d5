package awsutil

import (
	"context"
	"time"
)

// Paginator is an aws-sdk-go-v2 paginator (EC2's, Pricing's, ...): Page is
// its output type, Options its client's options type.
type Paginator[Page, Options any] interface {
	HasMorePages() bool
	NextPage(ctx context.Context, optFns ...func(Options)) (Page, error)
}

// EachPage calls fn on every page of p, each page's call bounded by
// timeout (the backend's per-call timeout), and returns the first call's
// error, after which fn sees no more pages.
func EachPage[Page, Options any](ctx context.Context, timeout time.Duration, p Paginator[Page, Options], fn func(Page)) error {
	for p.HasMorePages() {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		page, err := p.NextPage(cctx)
		cancel()
		if err != nil {
			return err
		}
		fn(page)
	}
	return nil
}
