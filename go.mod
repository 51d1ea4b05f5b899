module github.com/triggerkit/trigger

go 1.26.8

require (
	github.com/google/uuid v1.6.0
	github.com/robfig/cron/v3 v3.0.1
	go.etcd.io/bbolt v1.5.0
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.45.0
)

require github.com/stretchr/testify v1.12.1 // indirect
