package fakeaws

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

type pricingFilter struct {
	Type  string `json:"Type"`
	Field string `json:"Field"`
	Value string `json:"Value"`
}

// strictProductFields are the attributes the fake models exactly: every
// product is on-demand Linux, shared tenancy, no pre-installed software,
// capacity "Used". A filter asking for anything else on these fields finds
// nothing, as on AWS, so an adapter that forgets e.g. capacitystatus=Used
// still gets one product but one asking for Windows gets none.
var strictProductFields = map[string]bool{
	"servicecode": true, "productFamily": true, "instanceType": true, "operatingSystem": true,
	"tenancy": true, "preInstalledSw": true, "capacitystatus": true, "licenseModel": true,
	"marketoption": true,
}

// pricingGetProducts answers AWSPriceListService.GetProducts. The fake is
// region-agnostic: location and regionCode filters match anything and are
// echoed into the product attributes; other unmodelled fields match
// anything too.
func pricingGetProducts(s *Server, req *request) (*response, *apiError) {
	var in struct {
		ServiceCode   string          `json:"ServiceCode"`
		Filters       []pricingFilter `json:"Filters"`
		FormatVersion string          `json:"FormatVersion"`
		NextToken     string          `json:"NextToken"`
		MaxResults    int             `json:"MaxResults"`
	}
	if aerr := decodeJSON(req, &in); aerr != nil {
		return nil, aerr
	}
	if in.FormatVersion == "" {
		in.FormatVersion = "aws_v1"
	}
	if in.FormatVersion != "aws_v1" {
		return nil, errorf("InvalidParameterException", "Invalid FormatVersion: %s", in.FormatVersion)
	}
	if in.MaxResults <= 0 || in.MaxResults > 100 {
		in.MaxResults = 100
	}
	offset := int64(0)
	if in.NextToken != "" {
		n, ok := decodePageToken(in.NextToken)
		if !ok {
			return nil, errorf("InvalidNextTokenException", "The NextToken is invalid")
		}
		offset = n
	}
	for _, f := range in.Filters {
		switch f.Type {
		case "TERM_MATCH", "EQUALS", "CONTAINS", "ANY_OF", "NONE_OF":
		default:
			return nil, errorf("InvalidParameterException", "Invalid filter type: %s", f.Type)
		}
	}

	s.mu.Lock()
	prices := make(map[string]float64, len(s.prices))
	for k, v := range s.prices {
		prices[k] = v
	}
	types := make(map[string]InstanceType, len(s.types))
	for k, v := range s.types {
		types[k] = v
	}
	s.mu.Unlock()

	var list []string
	if in.ServiceCode == "AmazonEC2" {
		for _, name := range sortedKeys(prices) {
			attrs := productAttributes(name, types[name], req.region)
			if !matchProduct(in.Filters, attrs) {
				continue
			}
			list = append(list, priceDocument(attrs, prices[name]))
		}
	}
	out := struct {
		FormatVersion string   `json:"FormatVersion"`
		PriceList     []string `json:"PriceList"`
		NextToken     string   `json:"NextToken,omitempty"`
	}{FormatVersion: in.FormatVersion, PriceList: []string{}}
	if offset < int64(len(list)) {
		list = list[offset:]
		if len(list) > in.MaxResults {
			list = list[:in.MaxResults]
			out.NextToken = encodePageToken(offset + int64(in.MaxResults))
		}
		out.PriceList = list
	}
	return jsonResponse(out)
}

func productAttributes(name string, t InstanceType, region string) map[string]string {
	attrs := map[string]string{
		"servicecode":     "AmazonEC2",
		"servicename":     "Amazon Elastic Compute Cloud",
		"productFamily":   "Compute Instance",
		"instanceType":    name,
		"operatingSystem": "Linux",
		"tenancy":         "Shared",
		"preInstalledSw":  "NA",
		"capacitystatus":  "Used",
		"licenseModel":    "No License required",
		"marketoption":    "OnDemand",
		"location":        "US East (N. Virginia)",
		"locationType":    "AWS Region",
		"regionCode":      region,
		"usagetype":       "BoxUsage:" + name,
		"operation":       "RunInstances",
	}
	if t.Name != "" {
		attrs["vcpu"] = strconv.Itoa(int(t.VCPUs))
		attrs["memory"] = strconv.FormatFloat(float64(t.MemoryMiB)/1024, 'f', -1, 64) + " GiB"
	}
	return attrs
}

// matchProduct applies the filters; on a match, unmodelled fields take the
// filter's value so the product echoes the location the caller asked for.
func matchProduct(filters []pricingFilter, attrs map[string]string) bool {
	echo := map[string]string{}
	for _, f := range filters {
		if !strictProductFields[f.Field] {
			if f.Type == "TERM_MATCH" || f.Type == "EQUALS" {
				echo[f.Field] = f.Value
			}
			continue
		}
		if !filterMatches(f, attrs[f.Field]) {
			return false
		}
	}
	for k, v := range echo {
		attrs[k] = v
	}
	return true
}

func filterMatches(f pricingFilter, have string) bool {
	switch f.Type {
	case "CONTAINS":
		return strings.Contains(strings.ToLower(have), strings.ToLower(f.Value))
	case "ANY_OF", "NONE_OF":
		found := false
		for _, v := range strings.Split(f.Value, ",") {
			if strings.EqualFold(strings.TrimSpace(v), have) {
				found = true
			}
		}
		return found == (f.Type == "ANY_OF")
	}
	return strings.EqualFold(f.Value, have)
}

// priceDocument renders one price-list product as AWS does: a JSON document
// inside a JSON string. A reserved term sits next to the on-demand one, as
// in real answers, so a parser that grabs the first term it sees is caught.
func priceDocument(attrs map[string]string, usd float64) string {
	sum := sha256.Sum256([]byte(attrs["instanceType"] + "/" + attrs["regionCode"]))
	sku := base32.StdEncoding.EncodeToString(sum[:])[:16]
	term := func(code string, price float64, desc string, termAttrs map[string]string) map[string]any {
		id := sku + "." + code
		rate := id + ".6YS6EN2CT7"
		return map[string]any{
			id: map[string]any{
				"offerTermCode":  code,
				"sku":            sku,
				"effectiveDate":  "2024-10-01T00:00:00Z",
				"termAttributes": termAttrs,
				"priceDimensions": map[string]any{
					rate: map[string]any{
						"rateCode":     rate,
						"unit":         "Hrs",
						"beginRange":   "0",
						"endRange":     "Inf",
						"appliesTo":    []string{},
						"description":  desc,
						"pricePerUnit": map[string]string{"USD": fmt.Sprintf("%.10f", price)},
					},
				},
			},
		}
	}
	doc := map[string]any{
		"product": map[string]any{
			"productFamily": attrs["productFamily"],
			"attributes":    attrs,
			"sku":           sku,
		},
		"serviceCode": "AmazonEC2",
		"terms": map[string]any{
			"OnDemand": term("JRTCKXETXF", usd,
				fmt.Sprintf("$%.4f per On Demand Linux %s Instance Hour", usd, attrs["instanceType"]), map[string]string{}),
			"Reserved": term("4NA7Y494T4", usd*0.62,
				"Linux/UNIX (Amazon VPC), "+attrs["instanceType"]+" reserved instance applied",
				map[string]string{"LeaseContractLength": "1yr", "OfferingClass": "standard", "PurchaseOption": "No Upfront"}),
		},
		"version":         "20241010000000",
		"publicationDate": "2024-10-10T00:00:00Z",
	}
	b, _ := json.Marshal(doc)
	return string(b)
}
