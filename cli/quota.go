package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/coffer-csi/coffer/wiring"
)

// registerQuota registers the inputs of quota-aware call planning: the
// account's quotas (defaults: AWS's published ones), this node's share of
// them, and how coffer spreads and backs off.
func registerQuota(fs *pflag.FlagSet, f *wiring.Quota, d wiring.Quota) {
	fs.BoolVar(&f.HigherThroughput, "ssm-higher-throughput", d.HigherThroughput, "Parameter Store higher throughput is on in the account and region (3,000 GetParameter/GetParameters and 100 GetParametersByPath per second instead of 40 shared)")
	fs.Float64Var(&f.BatchGetSecretValue, "aws-quota-batch-get-secret-value", d.BatchGetSecretValue, "the account's BatchGetSecretValue quota, requests per second (AWS: 100, not adjustable)")
	fs.Float64Var(&f.GetSecretValue, "aws-quota-get-secret-value", d.GetSecretValue, "the account's GetSecretValue quota, requests per second")
	fs.Float64Var(&f.GetParameters, "aws-quota-get-parameters", d.GetParameters, "the account's GetParameter/GetParameters quota, requests per second (0: 40, or 3,000 with --ssm-higher-throughput)")
	fs.Float64Var(&f.GetParametersByPath, "aws-quota-get-parameters-by-path", d.GetParametersByPath, "with --ssm-higher-throughput, the account's GetParametersByPath quota, requests per second (0: 100); with standard throughput it shares --aws-quota-get-parameters")
	fs.Float64Var(&f.NodeShare, "aws-quota-node-share", d.NodeShare, "share of each account quota this node may spend per second (its client-side budget), above 0 and at most 1")
	fs.DurationVar(&f.ThrottleCooldown, "aws-throttle-cooldown", d.ThrottleCooldown, "after AWS throttles an API: how long coffer avoids it where there is an alternative and halves its budget (doubling while throttling goes on, up to 10m)")
	fs.DurationVar(&f.RemountJitter, "remount-jitter", d.RemountJitter, "a remount that must read AWS waits a random part of this first (at most a tenth of its deadline), so that rotation sweeps of many nodes do not line up; new pods never wait (0: off)")
}

func validateQuota(f wiring.Quota) []error {
	var errs []error
	if err := f.Quotas().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--aws-quota-*: %w", err))
	}
	if f.GetParameters < 0 || f.GetParametersByPath < 0 {
		errs = append(errs, errors.New("--aws-quota-get-parameters and --aws-quota-get-parameters-by-path must not be negative"))
	}
	if f.GetParametersByPath != 0 && !f.HigherThroughput {
		errs = append(errs, errors.New("--aws-quota-get-parameters-by-path needs --ssm-higher-throughput: with standard throughput GetParametersByPath shares --aws-quota-get-parameters"))
	}
	if !(f.NodeShare > 0 && f.NodeShare <= 1) {
		errs = append(errs, fmt.Errorf("--aws-quota-node-share must be above 0 and at most 1, not %v", f.NodeShare))
	}
	if f.ThrottleCooldown <= 0 {
		errs = append(errs, errors.New("--aws-throttle-cooldown must be positive"))
	}
	if f.RemountJitter < 0 {
		errs = append(errs, errors.New("--remount-jitter must not be negative"))
	}
	return errs
}
