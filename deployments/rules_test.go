package deployments

import (
	"os/exec"
	"strings"
	"testing"
)

// deployments/prometheus/rules.yml loads (promtool check rules) and every
// alert fires on what should raise it and stays quiet otherwise (promtool
// test rules, with the series in rules_test.yml).
func TestPrometheusRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian's prometheus package; .ci/run installs it)")
	}
	for _, args := range [][]string{{"check", "rules", "prometheus/rules.yml"}, {"test", "rules", "prometheus/rules_test.yml"}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
