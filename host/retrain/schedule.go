package retrain

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rerankloop/rerank/finetune/impression"
)

// scheduleState remembers the last run, so a schedule that fired and was
// rejected (or failed) waits for new evidence instead of firing again.
type scheduleState struct {
	mu   sync.Mutex
	last time.Time // when the last run started, whatever its trigger
	// serving and clicks: the serving version of the last run and the
	// clicks in its window.
	serving string
	clicks  int
}

func (s *scheduleState) attempted() {
	s.mu.Lock()
	s.last = time.Now()
	s.mu.Unlock()
}

func (s *scheduleState) exported(serving string, clicks int) {
	s.mu.Lock()
	s.serving, s.clicks = serving, clicks
	s.mu.Unlock()
}

// RunSchedule checks every retrain.check_interval, until ctx ends, whether
// the schedule calls for a retrain (retrain.every_clicks new clicks since the
// serving version's window, or retrain.every since the last run) and, with
// experiment.auto_stop, whether the running experiment has its answer.
func (c *Controller) RunSchedule(ctx context.Context) {
	t := time.NewTicker(c.cfg.Retrain.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.tick(ctx)
	}
}

func (c *Controller) tick(ctx context.Context) {
	if e := c.Experiment(); e != nil && c.cfg.Experiment.AutoStop {
		if _, err := c.ExperimentStatus(ctx, e.ID); err != nil {
			c.logger.Error("experiment check failed", "id", e.ID, "err", err)
		}
	}
	why, err := c.retrainDue(ctx)
	if err != nil {
		c.logger.Error("retrain schedule check failed", "err", err)
		return
	}
	if why == "" {
		return
	}
	if _, err := c.StartRetrain("schedule: " + why); err != nil {
		c.logger.Warn("scheduled retrain not started", "err", err)
	}
}

// retrainDue says why a retrain is due now, or "" when none is.
func (c *Controller) retrainDue(ctx context.Context) (string, error) {
	r := c.cfg.Retrain
	if r.EveryClicks == 0 && r.Every == 0 {
		return "", nil
	}
	if st, ok := c.RetrainStatus(); ok && st.State == StateRunning {
		return "", nil
	}
	serving, ok, err := c.reg.Serving()
	if err != nil || !ok {
		return "", err
	}
	c.sched.mu.Lock()
	last, lastServing, lastClicks := c.sched.last, c.sched.serving, c.sched.clicks
	c.sched.mu.Unlock()
	if r.Every > 0 {
		if last.IsZero() {
			last = serving.Created
		}
		if time.Since(last) >= r.Every {
			return fmt.Sprintf("%s since the last run", r.Every), nil
		}
	}
	if r.EveryClicks > 0 {
		n, err := c.clicksSince(ctx, serving.Data.Until)
		if err != nil {
			return "", err
		}
		if lastServing != serving.ID {
			lastClicks = 0 // a new serving version starts a new window
		}
		if n-lastClicks >= r.EveryClicks {
			return fmt.Sprintf("%d new clicks since %s's data window", n-lastClicks, serving.ID), nil
		}
	}
	return "", nil
}

// clicksSince counts the clicks on searches logged from since on.
func (c *Controller) clicksSince(ctx context.Context, since time.Time) (int, error) {
	n := 0
	err := c.log.Scan(ctx, since, func(e impression.Impression) error {
		for _, r := range e.Results {
			n += r.Clicks
		}
		return nil
	})
	return n, err
}
