package secretsync

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
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

func truncate(s string) string {
	if len(s) <= maxStatusMessage {
		return s
	}
	return s[:maxStatusMessage] + "..."
}

func secretStatus(r Result, sa string, prev SecretStatus, now time.Time) SecretStatus {
	st := SecretStatus{Name: r.Secret, Ready: "False", Reason: r.Reason, Message: truncate(r.Message), ServiceAccount: sa, LastSyncTime: prev.LastSyncTime}
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
		"(pods of that ServiceAccount sync it at mount, coffer sync reads AWS as it), so that no other workload's credentials can write it", name)
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
		st.Message = fmt.Sprintf("%d of %d Secrets not synced: %s", len(failed), synced+len(failed), strings.Join(failed, ", "))
	case synced > 0:
		st.Ready, st.Reason = "True", ReasonSynced
		st.Message = fmt.Sprintf("%d of %d Secrets synced", synced, synced)
	default:
		st.Ready, st.Reason = "Unknown", ReasonSynced
		st.Message = "no Secret synced yet"
	}
	return st
}

func invalidStatus(generation int64, reason, msg string) Status {
	return Status{ObservedGeneration: generation, Ready: "False", Reason: reason, Message: truncate(msg)}
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
