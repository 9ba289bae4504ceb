package fakeaws

import (
	"strings"
	"time"
)

type ssmParam struct {
	value    string
	version  int64
	modified time.Time
}

// SetSSMParameter creates or updates a String parameter; each update bumps
// its version, as PutParameter with Overwrite does.
func (s *Server) SetSSMParameter(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.params[name]
	p.value, p.version, p.modified = value, p.version+1, time.Now()
	s.params[name] = p
}

type ssmParameterJSON struct {
	ARN              string  `json:"ARN"`
	DataType         string  `json:"DataType"`
	LastModifiedDate float64 `json:"LastModifiedDate"` // JSON 1.1 timestamps are epoch seconds
	Name             string  `json:"Name"`
	Type             string  `json:"Type"`
	Value            string  `json:"Value"`
	Version          int64   `json:"Version"`
}

func (s *Server) ssmParamLocked(name, region string) (ssmParameterJSON, bool) {
	p, ok := s.params[name]
	if !ok {
		return ssmParameterJSON{}, false
	}
	return ssmParameterJSON{
		ARN:              "arn:aws:ssm:" + region + ":" + OwnerID + ":parameter/" + strings.TrimPrefix(name, "/"),
		DataType:         "text",
		LastModifiedDate: float64(p.modified.UnixMilli()) / 1000,
		Name:             name,
		Type:             "String",
		Value:            p.value,
		Version:          p.version,
	}, true
}

func ssmGetParameter(s *Server, req *request) (*response, *apiError) {
	var in struct {
		Name string `json:"Name"`
	}
	if aerr := decodeJSON(req, &in); aerr != nil {
		return nil, aerr
	}
	if in.Name == "" {
		return nil, errorf("ValidationException", "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null")
	}
	s.mu.Lock()
	p, ok := s.ssmParamLocked(in.Name, req.region)
	s.mu.Unlock()
	if !ok {
		return nil, errorf("ParameterNotFound", "Parameter %s not found.", in.Name)
	}
	return jsonResponse(map[string]any{"Parameter": p})
}

func ssmGetParameters(s *Server, req *request) (*response, *apiError) {
	var in struct {
		Names []string `json:"Names"`
	}
	if aerr := decodeJSON(req, &in); aerr != nil {
		return nil, aerr
	}
	out := struct {
		Parameters        []ssmParameterJSON `json:"Parameters"`
		InvalidParameters []string           `json:"InvalidParameters"`
	}{Parameters: []ssmParameterJSON{}, InvalidParameters: []string{}}
	s.mu.Lock()
	for _, n := range in.Names {
		if p, ok := s.ssmParamLocked(n, req.region); ok {
			out.Parameters = append(out.Parameters, p)
		} else {
			out.InvalidParameters = append(out.InvalidParameters, n)
		}
	}
	s.mu.Unlock()
	return jsonResponse(out)
}
