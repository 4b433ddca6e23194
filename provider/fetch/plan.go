package fetch

import (
	"github.com/coffer-csi/coffer/provider/quota"
	"github.com/coffer-csi/coffer/provider/spc"
)

// Limits of the AWS batch APIs.
const (
	parameterBatch = quota.ParametersPerCall
	secretBatch    = quota.SecretsPerBatch
)

// unitKind is how a group of objects is fetched.
type unitKind int

const (
	secretBatchUnit  unitKind = iota // BatchGetSecretValue, current versions
	secretSingleUnit                 // GetSecretValue, a pinned version or label
	parameterUnit                    // GetParameters
	bulkUnit                         // GetParametersByPath or BatchGetSecretValue with filters
)

type unit struct {
	kind    unitKind
	objects []*spc.Object
}

// plan groups objects into AWS calls: current Secrets Manager versions by
// 20, Parameter Store by 10, pinned secrets one by one.
func plan(objects []*spc.Object) []unit {
	var units []unit
	var current, params []*spc.Object
	for _, o := range objects {
		switch {
		case o.Bulk():
			units = append(units, unit{kind: bulkUnit, objects: []*spc.Object{o}})
		case o.Type == spc.ParameterStore:
			params = append(params, o)
		case wantsCurrent(o.Primary()) && (o.Failover == nil || wantsCurrent(*o.Failover)):
			current = append(current, o)
		default:
			units = append(units, unit{kind: secretSingleUnit, objects: []*spc.Object{o}})
		}
	}
	for start := 0; start < len(current); start += secretBatch {
		units = append(units, unit{kind: secretBatchUnit, objects: current[start:min(start+secretBatch, len(current))]})
	}
	for start := 0; start < len(params); start += parameterBatch {
		units = append(units, unit{kind: parameterUnit, objects: params[start:min(start+parameterBatch, len(params))]})
	}
	return units
}

// wantsCurrent reports whether a Secrets Manager target asks for the
// current version, which BatchGetSecretValue returns.
func wantsCurrent(t spc.Target) bool {
	return t.Version == "" && (t.VersionLabel == "" || t.VersionLabel == "AWSCURRENT")
}
