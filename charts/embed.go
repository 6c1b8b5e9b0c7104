// Package charts embeds the project's Helm charts, so that the CLI, the Dagger module and the tests
// render exactly the files in this folder without reading the disk at run time.
package charts

import "embed"

// Apps holds the umbrella chart under the directory AppsDir.
//
//go:embed all:krgeobuk-apps
var Apps embed.FS

// AppsDir is the chart's directory inside Apps.
const AppsDir = "krgeobuk-apps"
