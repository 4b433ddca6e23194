package quota

// SecretPlan is how a set of current-version secrets of one identity is
// read.
type SecretPlan int

const (
	// Batch reads them with one BatchGetSecretValue (up to 20).
	Batch SecretPlan = iota
	// Singles reads them with one GetSecretValue each.
	Singles
)

func (p SecretPlan) String() string {
	if p == Batch {
		return "batch"
	}
	return "singles"
}

// Situation is what ChooseSecrets weighs.
type Situation struct {
	// Secrets is how many current-version secrets one identity reads
	// together (at most 20, a batch).
	Secrets int
	// BatchDenied is set when the identity's role lacks
	// secretsmanager:BatchGetSecretValue.
	BatchDenied bool
	// Batch and Single are the node's budgets of BatchGetSecretValue and
	// GetSecretValue now.
	Batch, Single State
}

// ChooseSecrets weighs the calls a plan makes against the quota it spends.
//
// One batch call replaces n single calls (fewer calls, round trips and
// cost), but spends the scarcest quota there is: BatchGetSecretValue's 100
// per second per account cannot be raised, while GetSecretValue has 10,000.
// So the batch is used while its budget on this node has headroom, and the
// work shifts to single calls as soon as it has not: when AWS throttled
// the batch API lately, or when the batch budget holds less than half its
// bucket and single calls cost a smaller share of their budget than the
// batch does of its own, or when the batch budget is empty and the singles'
// can pay at once. One secret is always a single call: it costs one call
// either way, and GetSecretValue's quota is the plentiful one.
func ChooseSecrets(s Situation) SecretPlan {
	switch {
	case s.Secrets <= 1, s.BatchDenied, s.Batch.Avoided:
		return Singles
	case s.Single.Avoided:
		return Batch
	case s.Batch.Tokens < 1 && s.Single.Tokens >= float64(s.Secrets):
		return Singles
	case s.Batch.Tokens < s.Batch.Burst/2 && share(float64(s.Secrets), s.Single) < share(1, s.Batch):
		return Singles
	}
	return Batch
}

// share is the part of a budget's second that calls spend.
func share(calls float64, s State) float64 {
	if s.Rate <= 0 {
		return calls
	}
	return calls / s.Rate
}

// ParameterCalls splits n parameters of one identity into GetParameters
// calls: every call spends one request of the shared Parameter Store
// quota whatever it asks for, so calls are filled to the API's 10 names,
// and the sizes are returned in order (the last the remainder).
func ParameterCalls(n int) []int {
	var calls []int
	for n > 0 {
		k := min(n, ParametersPerCall)
		calls = append(calls, k)
		n -= k
	}
	return calls
}

// Most names or ids per call of the batch APIs.
const (
	ParametersPerCall = 10
	SecretsPerBatch   = 20
)
