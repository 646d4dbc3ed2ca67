package opensearch

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// RerankStage is what makes a cluster call our /v1/rerank: an ML Commons
// connector, the remote model registered and deployed on it, and search
// pipelines whose rerank processor uses that model.
type RerankStage struct {
	ConnectorID, ModelID string
}

// ConnectorBody is the ML Commons connector for a Cohere-shaped /v1/rerank
// at endpoint (http://host:port/v1/rerank); apiKey is rerank.api_key (empty:
// no Authorization header). The cohere pre- and post-process functions turn
// the processor's documents into Cohere's request and our results back into
// one score per document.
func ConnectorBody(name, endpoint, apiKey string) map[string]any {
	headers := map[string]string{"Content-Type": "application/json"}
	body := map[string]any{
		"name":        name,
		"description": "rerank serve's Cohere-shaped /v1/rerank",
		"version":     "1",
		"protocol":    "http",
		"actions": []any{map[string]any{
			"action_type":           "predict",
			"method":                "POST",
			"url":                   endpoint,
			"headers":               headers,
			"request_body":          `{ "documents": ${parameters.documents}, "query": "${parameters.query}", "top_n": ${parameters.top_n} }`,
			"pre_process_function":  "connector.pre_process.cohere.rerank",
			"post_process_function": "connector.post_process.cohere.rerank",
		}},
	}
	// ML Commons refuses a connector without a credential, even one it never sends.
	cred := "unused"
	if apiKey != "" {
		headers["Authorization"] = "Bearer ${credential.api_key}"
		cred = apiKey
	}
	body["credential"] = map[string]string{"api_key": cred}
	return body
}

// CreateRerankStage creates the connector to endpoint and registers and
// deploys a remote model on it (once: a second deploy marks a remote model
// DEPLOY_FAILED on 2.19 although it keeps serving).
func (c *Client) CreateRerankStage(ctx context.Context, name, endpoint, apiKey string) (RerankStage, error) {
	var conn struct {
		ConnectorID string `json:"connector_id"`
	}
	if err := c.Do(ctx, http.MethodPost, "/_plugins/_ml/connectors/_create", ConnectorBody(name, endpoint, apiKey), &conn); err != nil {
		return RerankStage{}, fmt.Errorf("create the connector to %s: %w", endpoint, err)
	}
	var reg struct {
		ModelID string `json:"model_id"`
		TaskID  string `json:"task_id"`
	}
	body := map[string]any{"name": name, "function_name": "remote", "connector_id": conn.ConnectorID}
	if err := c.Do(ctx, http.MethodPost, "/_plugins/_ml/models/_register?deploy=true", body, &reg); err != nil {
		return RerankStage{}, fmt.Errorf("register the model on connector %s: %w", conn.ConnectorID, err)
	}
	st := RerankStage{ConnectorID: conn.ConnectorID, ModelID: reg.ModelID}
	return st, c.waitDeployed(ctx, reg.ModelID, 60*time.Second)
}

func (c *Client) waitDeployed(ctx context.Context, modelID string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var m struct {
			State string `json:"model_state"`
		}
		if err := c.Do(ctx, http.MethodGet, "/_plugins/_ml/models/"+url.PathEscape(modelID), nil, &m); err != nil {
			return err
		}
		switch m.State {
		case "DEPLOYED":
			return nil
		case "DEPLOY_FAILED":
			return fmt.Errorf("opensearch: model %s: deploy failed", modelID)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("opensearch: model %s still %s after %s", modelID, m.State, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// PutRerankPipeline creates or replaces search pipeline name: a rerank
// processor that sends each hit's field to model and orders the hits by the
// scores that come back.
func (c *Client) PutRerankPipeline(ctx context.Context, name, modelID, field string) error {
	body := map[string]any{
		"description": "rerank stage: our /v1/rerank through ML Commons",
		"response_processors": []any{map[string]any{"rerank": map[string]any{
			"ml_opensearch": map[string]string{"model_id": modelID},
			"context":       map[string]any{"document_fields": []string{field}},
		}}},
	}
	return c.Do(ctx, http.MethodPut, "/_search/pipeline/"+url.PathEscape(name), body, nil)
}
