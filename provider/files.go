package provider

import (
	"context"
	"errors"
	"sort"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/internal/work"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// FetchFiles fetches and renders the objects of a validated configuration
// as the workload it describes (cfg.Pod, cfg.Tokens and the identity
// parameters), through the same fetch as Mount (identity resolution,
// clients, value cache, the one refresh of credentials AWS refused) and the
// same rendering. It serves callers other than the driver, such as Secret
// sync.
//
// Unlike Mount it returns what it could: the files of every object that was
// fetched and rendered, in object order, with fetch.Errors naming each object
// that was not (so a caller can act on the objects it needs). Each object is
// rendered on its own, within MaxObjectBytes. Failing to resolve the
// identity fails everything, with a nil file list.
func (m *Mounter) FetchFiles(ctx context.Context, cfg *spc.Config) ([]render.File, error) {
	_, values, fetchErr := m.fetch(ctx, cfg)
	var failed fetch.Errors
	if fetchErr != nil && !errors.As(fetchErr, &failed) {
		return nil, fetchErr
	}
	if work.FromContext(ctx) == nil {
		// The objects' renderings share one budget, as a mount's do.
		ctx = work.NewContext(ctx, work.New(render.MaxWork))
	}
	var files []render.File
	for _, v := range values {
		// One object at a time, so one object's bad jmesPath does not
		// withhold the files of the others.
		fs, err := render.Files(ctx, []fetch.Value{v}, render.Options{MaxResponseBytes: m.MaxObjectBytes, MaxValueBytes: m.MaxValueBytes, Translation: cfg.PathTranslation, Evaluator: m.Evaluator, Tenant: cfg.Pod.Namespace})
		var objErrs fetch.Errors
		switch {
		case errors.As(err, &objErrs):
			failed = append(failed, objErrs...)
		case err != nil:
			return nil, err
		default:
			files = append(files, fs...)
		}
	}
	if len(failed) > 0 {
		sort.SliceStable(failed, func(i, j int) bool { return failed[i].Object.Index < failed[j].Object.Index })
		return files, failed
	}
	return files, nil
}

// identityRequest is what auth needs to know about the workload of cfg.
func identityRequest(cfg *spc.Config) auth.Request {
	return auth.Request{
		Namespace:            cfg.Pod.Namespace,
		PodName:              cfg.Pod.Name,
		PodUID:               cfg.Pod.UID,
		ServiceAccount:       cfg.Pod.ServiceAccount,
		Tokens:               cfg.Tokens,
		UsePodIdentity:       cfg.UsePodIdentity,
		PreferredAddressType: cfg.PreferredAddressType,
		Region:               cfg.Region,
		AssumeRoleARN:        cfg.AssumeRoleARN,
		AssumeRoleExternalID: cfg.AssumeRoleExternalID,
	}
}
