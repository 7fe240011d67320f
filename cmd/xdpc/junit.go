package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"time"

	"github.com/xdpc/xdpc/internal/atomicfile"
)

// A JUnit XML report, as CI systems read them: suites of test cases, a
// failure (the test ran and is wrong) or an error (it could not run) in
// each case that did not pass.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     junitSeconds `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     junitSeconds `xml:"time,attr"`
	Cases    []junitCase  `xml:"testcase"`
}

type junitCase struct {
	Name      string       `xml:"name,attr"`
	Classname string       `xml:"classname,attr"`
	File      string       `xml:"file,attr,omitempty"`
	Line      int          `xml:"line,attr,omitempty"`
	Time      junitSeconds `xml:"time,attr"`
	Failure   *junitResult `xml:"failure"`
	Error     *junitResult `xml:"error"`
	// Skipped says the backend does not run the case yet.
	Skipped *junitResult `xml:"skipped"`
}

// junitResult is a failure or an error: a one-line message and the whole
// text that was printed for it.
type junitResult struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"`
}

// junitSeconds is a duration as JUnit writes it: seconds, to the
// millisecond.
type junitSeconds time.Duration

func (s junitSeconds) MarshalXMLAttr(name xml.Name) (xml.Attr, error) {
	return xml.Attr{Name: name, Value: fmt.Sprintf("%.3f", time.Duration(s).Seconds())}, nil
}

// junitReport gathers the cases of one run by suite, in the order they ran.
type junitReport struct {
	name   string
	suites []junitSuite
	index  map[string]int
}

func newJUnitReport(name string) *junitReport {
	return &junitReport{name: name, index: map[string]int{}}
}

// add records case c in the suite named suite.
func (r *junitReport) add(suite string, c junitCase) {
	i, ok := r.index[suite]
	if !ok {
		i = len(r.suites)
		r.index[suite] = i
		r.suites = append(r.suites, junitSuite{Name: suite})
	}
	s := &r.suites[i]
	s.Cases = append(s.Cases, c)
	s.Tests++
	s.Time += c.Time
	switch {
	case c.Error != nil:
		s.Errors++
	case c.Failure != nil:
		s.Failures++
	}
}

// marshal renders the report as an XML document.
func (r *junitReport) marshal() ([]byte, error) {
	all := junitSuites{Name: r.name, Suites: r.suites}
	for _, s := range r.suites {
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Errors += s.Errors
		all.Time += s.Time
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return nil, fmt.Errorf("encode junit report: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// write writes the report to path, replacing it whole.
func (r *junitReport) write(path string) error {
	data, err := r.marshal()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	return nil
}
