package secretsync

import (
	"context"
	"log/slog"

	"github.com/coffer-csi/coffer/internal/kube"
)

// logAPIFailure logs a request to the API that failed while doing
// something ("writing the status annotation"), at the level its cause
// deserves (kube.DescribeFailure): RBAC is named only when RBAC refused it.
func logAPIFailure(ctx context.Context, log *slog.Logger, doing, rbac string, err error, attrs ...any) {
	level, why := kube.DescribeFailure(ctx, err, rbac)
	log.Log(ctx, level, "secret sync: "+doing+" failed: "+why, append(attrs, "error", err)...)
}
