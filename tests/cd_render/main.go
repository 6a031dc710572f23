// cd_render runs an argocd-notifications-cm the way ArgoCD's notifications controller
// does, for one Application: each trigger's `when` through expr, then the webhook body of
// every template a firing condition sends, through Go text/template with sprig's
// functions (minus env and expandenv, as notifications-engine removes them).
//
// Built from Debian packages only (golang-go, golang-github-masterminds-sprig-dev,
// golang-github-antonmedv-expr-dev) with GO111MODULE=off and GOPATH=/usr/share/gocode:
// sprig is imported without its /v3 suffix (GOPATH mode), and expr is Debian's 1.8.9
// where notifications-engine pins expr-lang/expr 1.16; the differences that matter for
// the shipped triggers are handled, and named, in expr18 and oncePer below. Debian's
// sprig is 3.2.3 where argo-cd pins 3.3.0: dig, default, first, list, regexMatch, toJson
// and toString, all the templates use, behave the same in both.
//
// It reads one JSON object on stdin, {"triggers": {name: [{"when", "oncePer", "send"}]},
// "templates": {name: body}, "context": {key: value}, "app": <the Application>, "now":
// RFC 3339}, and writes {"fired": [{"trigger", "oncePer", "template", "body"}], "errors":
// [...]}: an error is what the engine would log (a `when` that failed to evaluate).
//
// Sources: notifications-engine pkg/triggers/service.go (Run), pkg/templates/service.go
// and pkg/services/webhook.go (GetTemplater); argo-cd util/notification/settings
// (initGetVars) and util/notification/expression (the time and strings helpers).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/Masterminds/sprig"
	"github.com/antonmedv/expr"
)

type condition struct {
	When    string   `json:"when"`
	OncePer string   `json:"oncePer"`
	Send    []string `json:"send"`
}

type input struct {
	Triggers  map[string][]condition `json:"triggers"`
	Templates map[string]string      `json:"templates"`
	Context   map[string]string      `json:"context"`
	App       map[string]any         `json:"app"`
	Now       string                 `json:"now"`
}

type fired struct {
	Trigger  string `json:"trigger"`
	OncePer  string `json:"oncePer"`
	Template string `json:"template"`
	Body     string `json:"body"`
}

type output struct {
	Fired  []fired  `json:"fired"`
	Errors []string `json:"errors"`
}

// argo-cd util/notification/expression/time: Parse panics on a bad timestamp, which expr
// turns into an evaluation error (the engine logs it; the trigger does not fire).
func timeHelpers(now time.Time) map[string]any {
	return map[string]any{
		"Parse": func(timestamp string) time.Time {
			res, err := time.Parse(time.RFC3339, timestamp)
			if err != nil {
				panic(err)
			}
			return res
		},
		"Now":         func() time.Time { return now },
		"Nanosecond":  time.Nanosecond,
		"Microsecond": time.Microsecond,
		"Millisecond": time.Millisecond,
		"Second":      time.Second,
		"Minute":      time.Minute,
		"Hour":        time.Hour,
		"RFC3339":     time.RFC3339,
	}
}

func stringHelpers() map[string]any {
	return map[string]any{
		"ReplaceAll": strings.ReplaceAll,
		"ToUpper":    strings.ToUpper,
		"ToLower":    strings.ToLower,
	}
}

// expr 1.8.9 cannot multiply an int by a time.Duration ("invalid operation: int *
// time.Duration"); expr 1.16 can, and the catalog's on-deployed writes `1 * time.Minute`.
// `1 * time.<Unit>` is rewritten to its value, `time.<Unit>`; any other product (or other
// gap between the versions) fails to compile and shows in "errors", loudly.
var onceTimes = regexp.MustCompile(`(^|[^0-9.\w])1 \* (time\.[A-Z][a-z]+)`)

func expr18(code string) string { return onceTimes.ReplaceAllString(code, "${1}${2}") }

// run is expr.Run with panics (a bad time.Parse) returned as errors.
func run(code string, env map[string]any) (val any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	program, err := expr.Compile(expr18(code))
	if err != nil {
		return nil, err
	}
	return expr.Run(program, env)
}

// oncePer evaluates the catalog's `a?.b?.c`. Debian's expr 1.8.9 has no optional
// chaining (expr 1.9 added `?.`; notifications-engine pins expr-lang/expr 1.16), so a
// plain member chain is evaluated instead and a fetch from nil reads as nil, which is
// what `?.` yields. Only member chains are rewritten; anything else must compile as is.
func oncePer(code string, env map[string]any) (string, error) {
	if !strings.Contains(code, "?.") {
		val, err := run(code, env)
		return fmt.Sprintf("%v", val), err
	}
	for _, r := range strings.ReplaceAll(code, "?.", ".") {
		if !(r == '.' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return "", fmt.Errorf("cd_render: only member chains may use ?. with expr 1.8: %s", code)
		}
	}
	val, err := run(strings.ReplaceAll(code, "?.", "."), env)
	if err != nil && strings.Contains(err.Error(), "from <nil>") {
		return fmt.Sprintf("%v", nil), nil
	}
	return fmt.Sprintf("%v", val), err
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "cd_render: bad input:", err)
		os.Exit(2)
	}
	now := time.Now().UTC()
	if in.Now != "" {
		var err error
		if now, err = time.Parse(time.RFC3339, in.Now); err != nil {
			fmt.Fprintln(os.Stderr, "cd_render: bad now:", err)
			os.Exit(2)
		}
	}
	// argo-cd initGetVars + expression.Spawn; notifications-engine adds serviceType.
	vars := map[string]any{
		"app":         in.App,
		"context":     in.Context,
		"secrets":     map[string]any{},
		"appProject":  map[string]any{},
		"time":        timeHelpers(now),
		"strings":     stringHelpers(),
		"serviceType": "webhook",
	}
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")

	out := output{Fired: []fired{}, Errors: []string{}}
	names := make([]string, 0, len(in.Triggers))
	for name := range in.Triggers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, cond := range in.Triggers[name] {
			when := cond.When
			if when == "" {
				when = "false"
			}
			val, err := run(when, vars)
			if err != nil {
				out.Errors = append(out.Errors, fmt.Sprintf("%s: when: %v", name, err))
				continue
			}
			if ok, isBool := val.(bool); !isBool || !ok {
				continue
			}
			key := ""
			if cond.OncePer != "" {
				if key, err = oncePer(cond.OncePer, vars); err != nil {
					out.Errors = append(out.Errors, fmt.Sprintf("%s: oncePer: %v", name, err))
				}
			}
			for _, send := range cond.Send {
				text, ok := in.Templates[send]
				if !ok {
					out.Errors = append(out.Errors, fmt.Sprintf("%s: template %s is not defined", name, send))
					continue
				}
				tmpl, err := template.New(send).Funcs(funcs).Parse(text)
				if err != nil {
					out.Errors = append(out.Errors, fmt.Sprintf("%s: parse: %v", send, err))
					continue
				}
				var body bytes.Buffer
				if err := tmpl.Execute(&body, vars); err != nil {
					out.Errors = append(out.Errors, fmt.Sprintf("%s: execute: %v", send, err))
					continue
				}
				out.Fired = append(out.Fired, fired{name, key, send, body.String()})
			}
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
