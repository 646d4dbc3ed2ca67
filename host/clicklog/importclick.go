package clicklog

import "context"

// ImportClick logs c as LogClick does and says whether it was new: an
// importer re-reading its source counts a click already logged (same search
// and event id) as present, not as added.
func (s *Store) ImportClick(ctx context.Context, c Click) (added bool, err error) {
	dup, err := s.logClick(ctx, c)
	return err == nil && !dup, err
}
