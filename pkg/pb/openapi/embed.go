// Package openapi embeds the generated OpenAPI document of every Gyre service.
package openapi

import _ "embed"

// Document is the merged OpenAPI (Swagger 2.0) document, served at /openapi.json.
//
//go:embed gyre.swagger.json
var Document []byte
