module slipway.dev/samples/delivery

go 1.22
