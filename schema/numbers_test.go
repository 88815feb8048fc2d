package schema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheckNumber(t *testing.T) {
	tests := []struct {
		n    string
		want string // substring of the reason; "" when accepted
	}{
		{"0", ""},
		{"-0", ""},
		{"42", ""},
		{"-12.5", ""},
		{"1e308", ""},
		{"1E+400", ""},
		{"-4.9e-324", ""},
		{"1e-400", ""},
		{"18446744073709551616", ""},
		{"1" + strings.Repeat("0", maxNumberLen-1), ""},
		{"1" + strings.Repeat("0", maxNumberLen), "longer than 100 characters"},
		{"1e401", "exponent beyond ±400"},
		{"1e-401", "exponent beyond ±400"},
		{"1e1000001", "exponent beyond ±400"},
		{"1e99999999999999999999999", "exponent beyond ±400"},
		{"", "not a JSON number"},
		{"-", "not a JSON number"},
		{"01", "not a JSON number"},
		{"1.", "not a JSON number"},
		{".5", "not a JSON number"},
		{"1e", "not a JSON number"},
		{"1e+", "not a JSON number"},
		{"+1", "not a JSON number"},
		{"NaN", "not a JSON number"},
		{"Inf", "not a JSON number"},
		{"0x10", "not a JSON number"},
		{"1_000", "not a JSON number"},
		{"1 ", "not a JSON number"},
	}
	for _, tt := range tests {
		got := checkNumber(tt.n)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("checkNumber(%q) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// TestValidateHugeNumbers covers numbers that would stall the validator for
// seconds or, with "maximum", make it panic.
func TestValidateHugeNumbers(t *testing.T) {
	s, err := Compile("progress", []byte(progressSchema))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		data string
		want string
	}{
		{`{"percent":1e1000001}`, "data/percent: number 1e1000001 is out of range: exponent beyond ±400"},
		{`{"percent":1,"output":{"path":"a","n":[0,1e-999999]}}`, "data/output/n/1: number 1e-999999 is out of range: exponent beyond ±400"},
		{`{"percent":1` + strings.Repeat("0", 1<<20) + `}`, "data/percent: number 10000000000000000000… is out of range: longer than 100 characters"},
	}
	for _, tt := range tests {
		err := s.Validate([]byte(tt.data))
		if !errors.Is(err, ErrInvalid) || err.Error() != tt.want {
			t.Errorf("Validate(%.40s) = %v, want %s", tt.data, err, tt.want)
		}
	}

	err = s.ValidateValue(map[string]any{"percent": json.Number("Inf")})
	if !errors.Is(err, ErrInvalid) || err.Error() != `data/percent: "Inf" is not a JSON number` {
		t.Errorf("ValidateValue(json.Number(Inf)) = %v", err)
	}
}

func TestCompileHugeNumbers(t *testing.T) {
	_, err := Compile("progress", []byte(`{"properties":{"percent":{"maximum":1e1000001}}}`))
	if !errors.Is(err, ErrInvalidSchema) || !strings.Contains(err.Error(), "schema/properties/percent/maximum: number 1e1000001 is out of range") {
		t.Errorf("Compile = %v", err)
	}
}
