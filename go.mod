module github.com/meshbot/meshbot

go 1.26

require (
	github.com/ergochat/irc-go v0.5.0
	github.com/fxamacker/cbor/v2 v2.10.0
	github.com/lrstanley/girc v1.1.1
)

require github.com/x448/float16 v0.8.4 // indirect
