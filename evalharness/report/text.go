package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the means of every measure per system, and the
// comparisons, for a terminal.
func (r *Result) WriteTable(w io.Writer) error {
	split := ""
	if r.Split != "" {
		split = " (" + r.Split + ")"
	}
	fmt.Fprintf(w, "%s%s: %d queries, first-stage depth %d\n\n", r.Dataset, split, r.Queries, r.Depth)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"measure"}
	for _, s := range r.Systems {
		head = append(head, s.label())
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, m := range r.Measures {
		row := []string{m}
		for _, s := range r.Systems {
			row = append(row, fmt.Sprintf("%.4f", s.Means[m]))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range r.Comparisons {
		fmt.Fprintf(w, "\n%s vs %s on %s: %+.4f (95%% CI %+.4f to %+.4f), p = %.4f, wins/ties/losses %d/%d/%d",
			c.Candidate, c.Base, c.Metric, c.MeanDiff, c.CILow, c.CIHigh, c.PValue, c.Wins, c.Ties, c.Losses)
	}
	if len(r.Comparisons) > 0 {
		fmt.Fprintln(w)
	}
	if len(r.Latency) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nlatency per query (this run)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stage\tqueries\tmean ms\tp50 ms\tp99 ms\t")
	for _, l := range r.Latency {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t\n", l.Stage, l.Queries, l.MeanMS, l.P50MS, l.P99MS)
	}
	return tw.Flush()
}

func (s System) label() string {
	if s.Role == FirstStage {
		return s.Name
	}
	return s.Role + " (" + s.Name + ")"
}

// WriteJSON writes the result as one indented JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}
