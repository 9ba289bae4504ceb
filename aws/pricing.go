package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/pricing/types"

	"github.com/computebot/computebot"
)

// pricingLocations maps region codes to the "location" attribute of the
// Pricing API, which predates region codes and still names regions in words.
var pricingLocations = map[string]string{
	"us-east-1":      "US East (N. Virginia)",
	"us-east-2":      "US East (Ohio)",
	"us-west-1":      "US West (N. California)",
	"us-west-2":      "US West (Oregon)",
	"ca-central-1":   "Canada (Central)",
	"ca-west-1":      "Canada West (Calgary)",
	"mx-central-1":   "Mexico (Central)",
	"sa-east-1":      "South America (Sao Paulo)",
	"eu-central-1":   "EU (Frankfurt)",
	"eu-central-2":   "EU (Zurich)",
	"eu-west-1":      "EU (Ireland)",
	"eu-west-2":      "EU (London)",
	"eu-west-3":      "EU (Paris)",
	"eu-north-1":     "EU (Stockholm)",
	"eu-south-1":     "EU (Milan)",
	"eu-south-2":     "EU (Spain)",
	"il-central-1":   "Israel (Tel Aviv)",
	"me-south-1":     "Middle East (Bahrain)",
	"me-central-1":   "Middle East (UAE)",
	"af-south-1":     "Africa (Cape Town)",
	"ap-east-1":      "Asia Pacific (Hong Kong)",
	"ap-south-1":     "Asia Pacific (Mumbai)",
	"ap-south-2":     "Asia Pacific (Hyderabad)",
	"ap-southeast-1": "Asia Pacific (Singapore)",
	"ap-southeast-2": "Asia Pacific (Sydney)",
	"ap-southeast-3": "Asia Pacific (Jakarta)",
	"ap-southeast-4": "Asia Pacific (Melbourne)",
	"ap-southeast-5": "Asia Pacific (Malaysia)",
	"ap-southeast-7": "Asia Pacific (Thailand)",
	"ap-northeast-1": "Asia Pacific (Tokyo)",
	"ap-northeast-2": "Asia Pacific (Seoul)",
	"ap-northeast-3": "Asia Pacific (Osaka)",
	"us-gov-west-1":  "AWS GovCloud (US-West)",
	"us-gov-east-1":  "AWS GovCloud (US-East)",
}

// PricingLocation returns the Pricing API location name of a region code
// ("us-east-1" → "US East (N. Virginia)"), or "" for a region not in the table.
func PricingLocation(region string) string { return pricingLocations[region] }

// priceEntry is a cached answer; usd 0 means "no price", remembered for less long.
type priceEntry struct {
	usd     float64
	expires time.Time
}

// priceFlight lets concurrent lookups of one type share a single GetProducts.
type priceFlight struct {
	done chan struct{}
	usd  float64
	err  error
}

// HourlyPrice is the on-demand price in USD per hour of a Linux instance of
// instanceType in the client's region, from the Pricing API, cached for
// PriceCacheTTL (an unknown price for an hour). Every failure wraps
// computebot.ErrPriceUnknown, so a caller that only wants "price unknown"
// checks that; Code and Message still say why (throttled, denied…).
func (c *Client) HourlyPrice(ctx context.Context, instanceType string) (float64, error) {
	c.mu.Lock()
	if e, ok := c.prices[instanceType]; ok && c.now().Before(e.expires) {
		c.mu.Unlock()
		return c.priceResult(instanceType, e.usd, nil)
	}
	if f, ok := c.flights[instanceType]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return c.priceResult(instanceType, f.usd, f.err)
		case <-ctx.Done():
			return c.priceResult(instanceType, 0, mapError(callInfo{API: "pricing:GetProducts"}, c.callTimeout, ctx.Err()))
		}
	}
	f := &priceFlight{done: make(chan struct{})}
	c.flights[instanceType] = f
	c.mu.Unlock()

	f.usd, f.err = c.lookupPrice(ctx, instanceType)

	c.mu.Lock()
	delete(c.flights, instanceType)
	if f.err == nil {
		// Failures are not cached: a throttled call is worth retrying next time.
		ttl := c.priceCacheTTL
		if f.usd == 0 {
			ttl = min(ttl, unknownPriceTTL)
		}
		c.prices[instanceType] = priceEntry{usd: f.usd, expires: c.now().Add(ttl)}
	}
	c.mu.Unlock()
	close(f.done)
	return c.priceResult(instanceType, f.usd, f.err)
}

func (c *Client) priceResult(instanceType string, usd float64, err error) (float64, error) {
	if err != nil {
		var ce *computebot.Error
		if errors.Is(err, computebot.ErrPriceUnknown) {
			return 0, err
		}
		if errors.As(err, &ce) && ce.Err != nil {
			return 0, &computebot.Error{Code: ce.Code, Message: ce.Message, Err: fmt.Errorf("%w: %w", computebot.ErrPriceUnknown, ce.Err)}
		}
		return 0, fmt.Errorf("%w: %w", computebot.ErrPriceUnknown, err)
	}
	if usd == 0 {
		return 0, &computebot.Error{
			Code:    CodePriceUnknown,
			Message: fmt.Sprintf("The AWS Pricing API has no on-demand Linux price for %s in %s.", instanceType, c.region),
			Err:     computebot.ErrPriceUnknown,
		}
	}
	return usd, nil
}

// lookupPrice asks the Pricing API, first by location name (the attribute
// every price list has), then by regionCode (newer, covers regions missing
// from our table). It returns 0 and no error when neither has a price.
func (c *Client) lookupPrice(ctx context.Context, instanceType string) (float64, error) {
	var queries [][]types.Filter
	if loc := PricingLocation(c.region); loc != "" {
		queries = append(queries, priceFilters(instanceType, "location", loc))
	}
	queries = append(queries, priceFilters(instanceType, "regionCode", c.region))

	info := callInfo{API: "pricing:GetProducts", Type: instanceType}
	for _, filters := range queries {
		out, err := call(ctx, c, info, func(ctx context.Context) (*pricing.GetProductsOutput, error) {
			return c.pricing.GetProducts(ctx, &pricing.GetProductsInput{
				ServiceCode:   awssdk.String("AmazonEC2"),
				FormatVersion: awssdk.String("aws_v1"),
				Filters:       filters,
				MaxResults:    awssdk.Int32(100),
			}, c.pricingRetry(info.API))
		})
		if err != nil {
			return 0, err
		}
		usd, err := parsePriceList(out.PriceList)
		if err == nil {
			return usd, nil
		}
		c.log.Debug("no price in answer", "type", instanceType, "region", c.region,
			"products", len(out.PriceList), "err", err)
	}
	return 0, nil
}

// priceFilters selects the plain on-demand Linux product: shared tenancy, no
// pre-installed software, capacity actually used (not a reservation's idle slot).
func priceFilters(instanceType, regionField, regionValue string) []types.Filter {
	term := func(field, value string) types.Filter {
		return types.Filter{Type: types.FilterTypeTermMatch, Field: awssdk.String(field), Value: awssdk.String(value)}
	}
	return []types.Filter{
		term("instanceType", instanceType),
		term(regionField, regionValue),
		term("operatingSystem", "Linux"),
		term("tenancy", "Shared"),
		term("preInstalledSw", "NA"),
		term("capacitystatus", "Used"),
	}
}

// priceListItem is the part of one PriceList JSON document we read:
// terms.OnDemand.<offer>.priceDimensions.<dimension>.pricePerUnit.USD.
type priceListItem struct {
	Terms struct {
		OnDemand map[string]struct {
			PriceDimensions map[string]struct {
				Unit         string            `json:"unit"`
				PricePerUnit map[string]string `json:"pricePerUnit"`
			} `json:"priceDimensions"`
		} `json:"OnDemand"`
	} `json:"terms"`
}

// parsePriceList returns the first positive hourly USD price in the
// documents (keys visited in sorted order, so the answer is deterministic),
// or an error saying why there is none.
func parsePriceList(items []string) (float64, error) {
	if len(items) == 0 {
		return 0, errors.New("no products")
	}
	var errs []error
	for i, raw := range items {
		var item priceListItem
		if err := json.Unmarshal([]byte(raw), &item); err != nil {
			errs = append(errs, fmt.Errorf("product %d: %w", i, err))
			continue
		}
		for _, tk := range sortedMapKeys(item.Terms.OnDemand) {
			dims := item.Terms.OnDemand[tk].PriceDimensions
			for _, dk := range sortedMapKeys(dims) {
				d := dims[dk]
				if d.Unit != "" && !strings.EqualFold(d.Unit, "Hrs") {
					continue
				}
				usd, err := strconv.ParseFloat(strings.TrimSpace(d.PricePerUnit["USD"]), 64)
				if err != nil {
					errs = append(errs, fmt.Errorf("product %d: USD price: %w", i, err))
					continue
				}
				if usd > 0 {
					return usd, nil
				}
			}
		}
	}
	if len(errs) == 0 {
		return 0, errors.New("no positive on-demand hourly USD price")
	}
	return 0, errors.Join(errs...)
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
