package commands

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseLaunchForm(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values map[string]string
		want   *Launch
		errs   []string // fields with an error
	}{
		{"all fields", map[string]string{FieldType: "G5.xlarge", FieldHours: "6", FieldImage: "dlami", FieldName: " box ", FieldReason: "train\nmodels"},
			&Launch{InstanceType: "g5.xlarge", Hours: 6, HoursSet: true, Image: "dlami", Name: "box", Reason: "train\nmodels"}, nil},
		{"type only", map[string]string{FieldType: "t3.small"}, &Launch{InstanceType: "t3.small"}, nil},
		{"nothing", map[string]string{}, nil, []string{FieldType}},
		{"every field wrong", map[string]string{FieldType: "t3small", FieldHours: "721", FieldImage: "Deep Learning", FieldName: "a\tb",
			FieldReason: strings.Repeat("x", MaxReasonLen+1)}, nil, []string{FieldType, FieldHours, FieldImage, FieldName, FieldReason}},
		{"hours zero", map[string]string{FieldType: "t3.small", FieldHours: "0"}, nil, []string{FieldHours}},
	} {
		got, errs := ParseLaunchForm(tc.values)
		if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
		for _, f := range tc.errs {
			if errs[f] == "" {
				t.Errorf("%s: no error on %s (%v)", tc.name, f, errs)
			}
		}
		if len(errs) != len(tc.errs) {
			t.Errorf("%s: errors %v, want on %v", tc.name, errs, tc.errs)
		}
	}
}
