package controller

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/coffer-csi/coffer/changefeed"
	"github.com/coffer-csi/coffer/cli"
	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/internal/version"
	"github.com/coffer-csi/coffer/provider/awsapi"
)

// Consumer builds coffer-controller events' consumer (cli.ControllerParts'):
// the AWS SDK's configuration in the queue's region, SQS, Parameter Store
// and Secrets Manager clients, and the changefeed consumer over them.
func Consumer(ctx context.Context, c cli.ConsumerConfig) (func(context.Context) error, error) {
	awsCfg, err := awsapi.LoadConfig(ctx, awsapi.Settings{Region: c.Queue.Region, FIPS: c.FIPS, DualStack: c.DualStack})
	if err != nil {
		return nil, err
	}
	covers, err := c.Queue.Coverage(awsCfg.Region)
	if err != nil {
		return nil, fmt.Errorf("--queue-url: %w", err)
	}
	awsCfg.Region = covers.Region
	consumer, err := changefeed.New(changefeed.Config{
		QueueURL: c.QueueURL, Covers: covers, Namespace: c.Namespace, Name: c.Ledger,
		CanaryParameter: c.CanaryParameter, CanarySecret: c.CanarySecret,
		CanaryInterval: c.CanaryInterval, Retention: c.Retention,
		Logger: c.Logger, Metrics: metrics.NewEventsConsumer(c.Registry, version.Version),
	}, changefeed.Clients{
		Queue: sqs.NewFromConfig(awsCfg), Parameters: ssm.NewFromConfig(awsCfg), Secrets: secretsmanager.NewFromConfig(awsCfg),
		ConfigMaps: c.ConfigMaps,
	})
	if err != nil {
		return nil, err
	}
	c.Logger.Info("consuming the change events of", "account", covers.Account, "region", covers.Region)
	return consumer.Run, nil
}
