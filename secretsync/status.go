package secretsync

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/spc"
)

// Status is the controller's sync status of a SecretProviderClass, kept as
// JSON in its AnnotationStatus annotation (the class's CRD has no status of
// coffer's), where kubectl describe shows it.
type Status struct {
	// ObservedGeneration is the generation of the class the status is for.
	ObservedGeneration int64 `json:"observedGeneration"`
	// Ready is "True" when every Secret the controller syncs is as
	// declared, "False" when one is not, "Unknown" when it syncs none.
	Ready   string         `json:"ready"`
	Reason  string         `json:"reason"`
	Message string         `json:"message"`
	Secrets []SecretStatus `json:"secrets,omitempty"`
}

// SecretStatus is the state of one declared Secret.
type SecretStatus struct {
	Name           string `json:"name"`
	Ready          string `json:"ready"`
	Reason         string `json:"reason"`
	Message        string `json:"message,omitempty"`
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// LastSyncTime is when the controller last found or made the Secret as
	// declared.
	LastSyncTime string `json:"lastSyncTime,omitempty"`
}

// Status reasons of a class as a whole.
const (
	ReasonSynced     = "SecretsSynced"
	ReasonSyncFailed = "SecretSyncFailed"
	// ReasonNoServiceAccount: an entry names no serviceAccountName, so no
	// identity may fill it and coffer syncs it for nobody.
	ReasonNoServiceAccount = "NoServiceAccount"
)

// maxStatusMessage bounds each message kept in the annotation.
const maxStatusMessage = 1024

// problems is a message that lists problems: lead, then each item
// ("(1) ...", "(2) ..."), as "lead: item; item". The status annotation
// keeps as many whole problems as fit and says how many more there are;
// Events keep the whole list.
type problems struct {
	lead  string
	items []string
}

func (p problems) String() string { return p.lead + ": " + strings.Join(p.items, "; ") }

// problemsOf splits what err lists (a class's validation problems, the
// objects a fetch failed on) into items under lead; ok is false when err is
// one problem.
func problemsOf(lead string, err error) (p problems, ok bool) {
	var invalid *spc.ValidationError
	var objErrs fetch.Errors
	switch {
	case errors.As(err, &invalid) && len(invalid.Problems) > 1 && err.Error() == invalid.Error():
		src := cmp.Or(invalid.Source, "SecretProviderClass")
		p.lead = fmt.Sprintf("%s: invalid %s: %d problems", lead, src, len(invalid.Problems))
		for i, pr := range invalid.Problems {
			p.items = append(p.items, fmt.Sprintf("(%d) %s", i+1, pr))
		}
	case errors.As(err, &objErrs) && len(objErrs) > 1 && err.Error() == objErrs.Error():
		p.lead = fmt.Sprintf("%s: %d objects failed", lead, len(objErrs))
		for i, oe := range objErrs {
			p.items = append(p.items, fmt.Sprintf("(%d) %s", i+1, oe))
		}
	default:
		return problems{}, false
	}
	return p, true
}

// fit shortens a message to limit bytes for the annotation. A list keeps
// whole problems, as many as fit, and says how many are left out; a single
// message is cut at a word.
func fit(msg string, list *problems, limit int) string {
	if len(msg) <= limit {
		return msg
	}
	if list == nil {
		cut := msg[:limit-len(cutNote)]
		if i := strings.LastIndexAny(cut, " ;,"); i > limit/2 {
			cut = cut[:i]
		}
		return strings.ToValidUTF8(cut, "") + cutNote
	}
	out := list.lead + ":"
	for i, item := range list.items {
		next := out + " " + item
		// After this item there must still be room to say what is left.
		room := 0
		if rest := len(list.items) - i - 1; rest > 0 {
			room = len(";") + len(fmt.Sprintf(moreNote, rest))
		}
		if len(next)+room > limit {
			if i == 0 {
				return fit(list.lead+": "+noneNote, nil, limit)
			}
			return out + fmt.Sprintf(moreNote, len(list.items)-i)
		}
		out = next + ";"
	}
	return strings.TrimSuffix(out, ";")
}

const (
	moreNote = " and %d more (the class's Events list every one)"
	noneNote = "too long to list here; the class's Events list every one"
	cutNote  = " ... (cut; the class's Events have the whole message)"
)

func secretStatus(r Result, sa string, prev SecretStatus, now time.Time) SecretStatus {
	st := SecretStatus{Name: r.Secret, Ready: "False", Reason: r.Reason, Message: fit(r.Message, r.problems, maxStatusMessage), ServiceAccount: sa, LastSyncTime: prev.LastSyncTime}
	if r.Ready {
		st.Ready = "True"
		st.LastSyncTime = now.UTC().Format(time.RFC3339)
	}
	return st
}

// noServiceAccountMessage explains why an entry without serviceAccountName
// is never synced: whichever pod mounted the class would otherwise fill
// (and, with deletionPolicy Delete, delete) it with its own credentials.
func noServiceAccountMessage(name string) string {
	return fmt.Sprintf("Secret %q not synced: the entry names no serviceAccountName; set it to the ServiceAccount whose AWS identity fills this Secret "+
		"(pods of that ServiceAccount sync it at mount, coffer-controller sync reads AWS as it), so that no other workload's credentials can write it", name)
}

func noServiceAccountStatus(name string) SecretStatus {
	return SecretStatus{Name: name, Ready: "False", Reason: ReasonNoServiceAccount, Message: noServiceAccountMessage(name)}
}

// summarize builds a class's status from its Secrets' (in declaration
// order).
func summarize(generation int64, secrets []SecretStatus) Status {
	st := Status{ObservedGeneration: generation, Secrets: secrets}
	var failed []string
	synced := 0
	for _, s := range secrets {
		switch s.Ready {
		case "True":
			synced++
		case "False":
			failed = append(failed, fmt.Sprintf("%s (%s)", s.Name, s.Reason))
		}
	}
	switch {
	case len(failed) > 0:
		st.Ready, st.Reason = "False", ReasonSyncFailed
		list := problems{lead: fmt.Sprintf("%d of %d Secrets not synced", len(failed), synced+len(failed)), items: failed}
		st.Message = fit(list.String(), &list, maxStatusMessage)
	case synced > 0:
		st.Ready, st.Reason = "True", ReasonSynced
		st.Message = fmt.Sprintf("%d of %d Secrets synced", synced, synced)
	default:
		st.Ready, st.Reason = "Unknown", ReasonSynced
		st.Message = "no Secret synced yet"
	}
	return st
}

func invalidStatus(generation int64, r Result) Status {
	return Status{ObservedGeneration: generation, Ready: "False", Reason: r.Reason, Message: fit(r.Message, r.problems, maxStatusMessage)}
}

func (s Status) encode() string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // strings only
	}
	return string(b)
}

// ParseStatus reads a class's AnnotationStatus annotation.
func ParseStatus(annotation string) (Status, error) {
	var s Status
	err := json.Unmarshal([]byte(annotation), &s)
	return s, err
}

func sortStatuses(list []SecretStatus, order map[string]int) {
	sort.SliceStable(list, func(i, j int) bool { return order[list[i].Name] < order[list[j].Name] })
}
