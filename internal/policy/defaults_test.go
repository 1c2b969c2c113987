package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// readmePath is the policy file documentation whose field tables list every
// default.
const readmePath = "../../deploy/policies/README.md"

// docField is one row of a field table in the README.
type docField struct {
	path    string // e.g. tables.flows; relative to the service for service fields
	service bool   // from the Services table
	def     string // the default cell, as written
	line    int
}

// readDocFields returns the rows of the README's field tables: the
// top-level table under "## Fields" and the service table under
// "### Services".
func readDocFields(t *testing.T) []docField {
	t.Helper()
	data, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	var out []docField
	service, inTable := false, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "#"):
			service = strings.TrimSpace(strings.TrimLeft(l, "#")) == "Services"
			inTable = false
		case strings.HasPrefix(l, "| field | default | allowed | meaning |"):
			inTable = true
		case !strings.HasPrefix(l, "|"):
			inTable = false
		case inTable && !strings.HasPrefix(l, "|---"):
			cells := strings.Split(strings.Trim(l, "|"), "|")
			if len(cells) != 4 {
				t.Fatalf("%s:%d: %d cells, want 4: %s", readmePath, n, len(cells), l)
			}
			out = append(out, docField{
				path:    strings.Trim(strings.TrimSpace(cells[0]), "`"),
				service: service,
				def:     strings.TrimSpace(cells[1]),
				line:    n,
			})
		}
	}
	if len(out) < 20 {
		t.Fatalf("%s: found %d documented fields, want the two field tables", readmePath, len(out))
	}
	return out
}

// minimalService are the lines of the one service of minimalFile, by field.
var minimalService = []struct{ key, line string }{
	{"name", "name: web"},
	{"addresses", "addresses: [198.18.3.2/32]"},
	{"ports", "ports: [80]"},
}

// minimalFile is the smallest valid policy file: version and one service
// with its required fields, leaving omit out (a top-level or service field).
func minimalFile(omit string) string {
	var b strings.Builder
	if omit != "version" {
		b.WriteString("version: 1\n")
	}
	if omit == "services" {
		return b.String()
	}
	b.WriteString("services:\n")
	first := true
	for _, f := range minimalService {
		if f.key == omit {
			continue
		}
		if first {
			b.WriteString("  - " + f.line + "\n")
			first = false
		} else {
			b.WriteString("    " + f.line + "\n")
		}
	}
	return b.String()
}

// nested writes path (a.b.c) as nested YAML mappings at indent, with value
// as the innermost value.
func nested(path, value string, indent int) string {
	var b strings.Builder
	keys := strings.Split(path, ".")
	for i, k := range keys {
		b.WriteString(strings.Repeat(" ", indent+2*i) + k + ":")
		if i == len(keys)-1 {
			b.WriteString(" " + value)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// errPaths returns the field paths of the policy errors in err.
func errPaths(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var pe *Error
		if errors.As(err, &pe) {
			out = append(out, pe.Path)
		}
	}
	walk(err)
	return out
}

// derivedDefaults are the documented defaults that are not a value one can
// write into a file: each with the README's exact wording and a check of
// the effective policy of minimalFile.
var derivedDefaults = map[string]struct {
	doc   string
	check func(p *Policy) error
}{
	"cookies.key_file": {"none (random key)", func(p *Policy) error {
		if p.Cookies.KeyFile != "" {
			return fmt.Errorf("KeyFile = %q, want none", p.Cookies.KeyFile)
		}
		return nil
	}},
	"advertise.mss6": {"`mss - 20`", func(p *Policy) error {
		if a := p.Services[0].Advertise; a.MSS6 != a.MSS4-20 {
			return fmt.Errorf("MSS6 = %d with MSS4 %d, want MSS4 - 20", a.MSS6, a.MSS4)
		}
		q, err := Parse("mss.yaml", []byte(minimalFile("")+nested("advertise.mss", "1400", 4)))
		if err != nil {
			return err
		}
		if a := q.Services[0].Advertise; a.MSS6 != 1380 {
			return fmt.Errorf("with mss 1400, MSS6 = %d, want 1380", a.MSS6)
		}
		return nil
	}},
}

// TestDocumentedDefaults holds the defaults in deploy/policies/README.md to
// the code, field by field: a minimal policy file that sets one field to its
// documented default has the same effective policy as the minimal file
// without it; a field documented as required is refused when left out; and
// every field the effective policy has is documented.
func TestDocumentedDefaults(t *testing.T) {
	fields := readDocFields(t)
	min, err := Parse("minimal.yaml", []byte(minimalFile("")))
	if err != nil {
		t.Fatalf("Parse(minimal): %v\n%s", err, minimalFile(""))
	}
	for _, f := range fields {
		name := f.path
		if f.service {
			name = "services[0]." + f.path
		}
		t.Run(name, func(t *testing.T) {
			at := fmt.Sprintf("%s:%d", readmePath, f.line)
			if d, ok := derivedDefaults[f.path]; ok {
				if f.def != d.doc {
					t.Fatalf("%s: default of %s is %s, the test knows %s: update both", at, f.path, f.def, d.doc)
				}
				if err := d.check(min); err != nil {
					t.Errorf("%s: %s: %v", at, f.path, err)
				}
				return
			}
			if f.def == "required" {
				_, err := Parse("omit.yaml", []byte(minimalFile(f.path)))
				if !slices.Contains(errPaths(err), name) {
					t.Errorf("%s: Parse(minimal file without %s) = %v, want an error at %s", at, f.path, err, name)
				}
				return
			}
			value, ok := strings.CutPrefix(f.def, "`")
			if value, ok = strings.CutSuffix(value, "`"); !ok || strings.Contains(value, "`") {
				t.Fatalf("%s: default of %s is %s, want one `value`, \"required\" or an entry in derivedDefaults", at, f.path, f.def)
			}
			doc := minimalFile("")
			if f.service {
				doc += nested(f.path, value, 4)
			} else {
				doc += nested(f.path, value, 0)
			}
			got, err := Parse("explicit.yaml", []byte(doc))
			if err != nil {
				t.Fatalf("%s: the documented default %s = %s does not parse: %v\n%s", at, f.path, value, err, doc)
			}
			if d := cmp.Diff(min, got, cmpPolicy...); d != "" {
				t.Errorf("%s: %s: %s written out differs from the code's default (-default +documented):\n%s", at, f.path, value, d)
			}
		})
	}

	// Every field of the effective policy is documented.
	documented := map[string]bool{}
	for _, f := range fields {
		if f.service {
			documented["services[]."+f.path] = true
		} else {
			documented[f.path] = true
		}
	}
	withKey := *min
	withKey.Cookies.KeyFile = "key"
	var buf bytes.Buffer
	if err := withKey.Format(&buf); err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	leaves := yamlLeaves(doc.Content[0], "")
	if len(leaves) < 20 {
		t.Fatalf("Format(minimal) has %d fields, want every field:\n%s", len(leaves), buf.String())
	}
	for _, l := range leaves {
		if !documented[l] {
			t.Errorf("field %s of the effective policy is not in %s", l, readmePath)
		}
	}
}

// yamlLeaves returns the paths of the scalar and list values under n;
// the items of services are walked as "services[]".
func yamlLeaves(n *yaml.Node, path string) []string {
	switch {
	case n.Kind == yaml.MappingNode:
		var out []string
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, yamlLeaves(n.Content[i+1], join(path, n.Content[i].Value))...)
		}
		return out
	case n.Kind == yaml.SequenceNode && path == "services":
		var out []string
		for _, c := range n.Content {
			out = append(out, yamlLeaves(c, "services[]")...)
		}
		return out
	}
	return []string{path}
}

// TestNewDefaultsMatchFile: New with zero tables has the defaults of a file
// that leaves everything but its services out.
func TestNewDefaultsMatchFile(t *testing.T) {
	file, err := Parse("empty.yaml", []byte("version: 1\nservices: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	built, err := New(nil, Tables{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(file, built, cmpPolicy...); d != "" {
		t.Errorf("New(nil, Tables{}) differs from an empty file's policy (-file +New):\n%s", d)
	}
}

// labWScale is the window scale the embedded default advertises: that of
// the lab's Linux servers (tcp_rmem's maximum of 32 MiB), so that the
// conntrack hand-off can carry their connections.
const labWScale = 10

// TestDefaultTakesDefaults: the embedded default names its service and the
// window scale of the lab's servers, and takes every other value from the
// defaults.
func TestDefaultTakesDefaults(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	empty, err := Parse("empty.yaml", []byte("version: 1\nservices: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	noServices := *p
	noServices.Services = nil
	if d := cmp.Diff(empty, &noServices, cmpPolicy...); d != "" {
		t.Errorf("Default() without its service differs from the defaults (-defaults +Default):\n%s", d)
	}
	ds := defaultService()
	ds.Advertise.WScale = labWScale
	if s := p.Services[0]; s.Mode != ds.Mode || s.Advertise != ds.Advertise || s.Limit != ds.Limit {
		t.Errorf("Default() service = mode %v, %+v, %+v; want the defaults mode %v, %+v, %+v", s.Mode, s.Advertise, s.Limit, ds.Mode, ds.Advertise, ds.Limit)
	}
	if got, want := p.Queue.Numbers, DefaultQueueNumbers(); !slices.Equal(got, want) {
		t.Errorf("Default().Queue.Numbers = %v, want %v", got, want)
	}
}
