module github.com/krgeobuk/krgeobuk-infra/scripts/engine

go 1.26.1

require (
	github.com/google/go-containerregistry v0.22.1
	github.com/sethvargo/go-retry v0.5.0
	github.com/stretchr/testify v1.12.1
)

require (
	github.com/krgeobuk/krgeobuk-infra v0.0.0-00010101000000-000000000000
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

replace github.com/krgeobuk/krgeobuk-infra => ../..
