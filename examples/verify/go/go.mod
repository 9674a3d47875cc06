module example.com/wxauth-verify

go 1.22

// `go mod tidy` adds go.sum and the indirect requirements (this example is not run here).
require (
	github.com/MicahParks/keyfunc/v3 v3.8.0
	github.com/golang-jwt/jwt/v5 v5.3.1
)
