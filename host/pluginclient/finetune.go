package pluginclient

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/rerankloop/rerank/plugin/contract"
)

// Finetune trains through the current plugin process, streaming progress.
// Unlike serving calls it has no deadline, and a plugin that dies during
// training is an error, not a retry (the supervisor restarts the process for
// serving; the run continues with FinetuneRequest.Resume). Cancelling ctx
// stops training gracefully; see contract.Trainer.
func (c *Client) Finetune(ctx context.Context, req contract.FinetuneRequest, progress func(contract.FinetuneProgress)) (contract.FinetuneResult, error) {
	rpc, err := c.conn()
	if err != nil {
		return contract.FinetuneResult{}, err
	}
	// The plugin may run in another working directory.
	for _, p := range []*string{&req.BaseModel, &req.OutDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return contract.FinetuneResult{}, err
		}
	}
	res, err := rpc.trainer.Finetune(ctx, req, progress)
	if err = unavailable(err); errors.Is(err, contract.ErrUnavailable) {
		err = fmt.Errorf("the plugin process exited during training (its checkpoints in %s are kept; resume to continue): %w", req.OutDir, err)
	}
	return res, err
}
