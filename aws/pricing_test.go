package aws_test

import (
	"testing"

	"github.com/computebot/computebot/aws"
)

// A trimmed real GetProducts document (t2.micro, us-east-1).
const t2microPriceList = `{
 "product": {"productFamily": "Compute instance", "sku": "DQ578CGN99KG6ECF",
  "attributes": {"instanceType": "t2.micro", "location": "US East (N. Virginia)", "regionCode": "us-east-1",
   "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}},
 "serviceCode": "AmazonEC2",
 "terms": {
  "OnDemand": {"DQ578CGN99KG6ECF.JRTCKXETXF": {"priceDimensions": {"DQ578CGN99KG6ECF.JRTCKXETXF.6YS6EN2CT7": {
   "unit": "Hrs", "endRange": "Inf", "description": "$0.0116 per On Demand Linux t2.micro Instance Hour",
   "appliesTo": [], "rateCode": "DQ578CGN99KG6ECF.JRTCKXETXF.6YS6EN2CT7", "beginRange": "0",
   "pricePerUnit": {"USD": "0.0116000000"}}},
   "sku": "DQ578CGN99KG6ECF", "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "JRTCKXETXF", "termAttributes": {}}},
  "Reserved": {"DQ578CGN99KG6ECF.4NA7Y494T4": {"priceDimensions": {"x": {"unit": "Hrs", "pricePerUnit": {"USD": "0.0072000000"}}}}}
 },
 "version": "20261101000000", "publicationDate": "2026-11-01T00:00:00Z"
}`

func TestParsePriceList(t *testing.T) {
	tests := []struct {
		name  string
		items []string
		want  float64
		ok    bool
	}{
		{"real document", []string{t2microPriceList}, 0.0116, true},
		{"empty", nil, 0, false},
		{"malformed then good", []string{"{not json", t2microPriceList}, 0.0116, true},
		{"only malformed", []string{"{not json"}, 0, false},
		{"zero price skipped", []string{`{"terms":{"OnDemand":{"a":{"priceDimensions":{"a":{"unit":"Hrs","pricePerUnit":{"USD":"0.0000000000"}}}}}}}`}, 0, false},
		{"not hourly skipped", []string{`{"terms":{"OnDemand":{"a":{"priceDimensions":{"a":{"unit":"Quantity","pricePerUnit":{"USD":"99"}}}}}}}`}, 0, false},
		{"no USD", []string{`{"terms":{"OnDemand":{"a":{"priceDimensions":{"a":{"unit":"Hrs","pricePerUnit":{"CNY":"1.2"}}}}}}}`}, 0, false},
		{"no on-demand terms", []string{`{"terms":{"Reserved":{}}}`}, 0, false},
		{"deterministic among dimensions", []string{`{"terms":{"OnDemand":{"b":{"priceDimensions":{"x":{"unit":"Hrs","pricePerUnit":{"USD":"2"}}}},"a":{"priceDimensions":{"z":{"unit":"Hrs","pricePerUnit":{"USD":"0"}},"y":{"unit":"Hrs","pricePerUnit":{"USD":"1"}}}}}}}`}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := aws.ParsePriceList(tt.items)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if got != tt.want {
				t.Errorf("price = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPricingLocation(t *testing.T) {
	for region, want := range map[string]string{
		"us-east-1":      "US East (N. Virginia)",
		"us-west-2":      "US West (Oregon)",
		"eu-west-1":      "EU (Ireland)",
		"eu-central-1":   "EU (Frankfurt)",
		"ap-northeast-1": "Asia Pacific (Tokyo)",
		"sa-east-1":      "South America (Sao Paulo)",
		"xx-nowhere-9":   "",
	} {
		if got := aws.PricingLocation(region); got != want {
			t.Errorf("PricingLocation(%q) = %q, want %q", region, got, want)
		}
	}
}
