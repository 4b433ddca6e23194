package provider

import (
	"errors"
	"log/slog"

	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/spc"
)

// skipOptional takes out of a fetch error the objects marked optional that
// AWS says do not exist (fetch.KindNotFound in the primary region: the
// secret or parameter, its version or label, or anything a path or filters
// object would select), so that the mount goes on without their files.
// Every other failure of an optional object (access denied, throttling, an
// invalid request, KMS) stays: a typo in a role must fail loudly. Each skip
// is logged and counted; so is each templated file that reads a skipped
// object, which is left out too. It returns the templated files to render
// and what remains of the error (nil when nothing does).
func (m *Mounter) skipOptional(log *slog.Logger, cfg *spc.Config, fetchErr error) ([]*spc.FileTemplate, error) {
	var errs fetch.Errors
	if !errors.As(fetchErr, &errs) {
		return cfg.Files, fetchErr
	}
	skipped := map[*spc.Object]bool{}
	var rest fetch.Errors
	for _, e := range errs {
		if !e.Object.Optional || e.Kind != fetch.KindNotFound {
			rest = append(rest, e)
			continue
		}
		skipped[e.Object] = true
		reason := metrics.SkipObjectNotFound
		if e.Object.Bulk() {
			reason = metrics.SkipEmptySelection
		}
		m.Metrics.OptionalSkip(reason)
		log.Info("optional object left out of the mount", "object", e.Object.Describe(), "reason", reason, "detail", e.Detail)
	}
	if len(skipped) == 0 {
		return cfg.Files, fetchErr
	}
	files := make([]*spc.FileTemplate, 0, len(cfg.Files))
	for _, f := range cfg.Files {
		if missing := missingInput(f, skipped); missing != nil {
			m.Metrics.OptionalSkip(metrics.SkipInputSkipped)
			log.Info("optional object left out of the mount", "file", f.Describe(), "reason", metrics.SkipInputSkipped, "object", missing.Describe())
			continue
		}
		files = append(files, f)
	}
	if len(rest) == 0 {
		return files, nil
	}
	return files, rest
}

// missingInput returns an input object of f that was skipped, or nil.
func missingInput(f *spc.FileTemplate, skipped map[*spc.Object]bool) *spc.Object {
	for _, in := range f.Inputs {
		if skipped[in.Object] {
			return in.Object
		}
	}
	return nil
}
