// Package ci holds the tests of the project's continuous integration: the
// GitHub Actions workflow is linted here with actionlint, so a broken
// workflow fails `go test ./...` on a developer's machine, not first on
// GitHub.
package ci
