package aws_test

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/computebot/computebot/config"
)

// policyPath is the deploy policy, relative to this package's directory
// (where go test runs).
const policyPath = "../deploy/iam-policy.json"

// sdkServicePrefix is the import path of the SDK's service packages; the
// segment after it names the service (".../service/ec2").
const sdkServicePrefix = "github.com/aws/aws-sdk-go-v2/service/"

// iamPrefix maps an SDK service package to its IAM action prefix. A service
// missing here makes TestIAMPolicyCoversExactlyTheAWSCalls fail, naming it.
var iamPrefix = map[string]string{
	"ec2":           "ec2",
	"pricing":       "pricing",
	"ssm":           "ssm",
	"lambda":        "lambda",
	"cloudwatch":    "cloudwatch",
	"sts":           "sts",
	"dynamodb":      "dynamodb",
	"servicequotas": "servicequotas",
}

// iamActionName maps the SDK operations whose IAM action has another name.
var iamActionName = map[string]string{
	"lambda:Invoke":                   "lambda:InvokeFunction",
	"lambda:InvokeWithResponseStream": "lambda:InvokeFunction",
}

// clientMethodsNotOperations are methods of an SDK *Client that send no
// request.
var clientMethodsNotOperations = map[string]bool{"Options": true}

// awsCall is one AWS operation found in the source.
type awsCall struct {
	service string // SDK package, e.g. "lambda"
	op      string // SDK operation, e.g. "Invoke"
	pos     string // file:line of the call
}

func (c awsCall) action() string {
	a := iamPrefix[c.service] + ":" + c.op
	if n, ok := iamActionName[c.service+":"+c.op]; ok {
		return n
	}
	return a
}

// TestIAMPolicyCoversExactlyTheAWSCalls checks deploy/iam-policy.json
// against the code: every AWS operation package aws calls must be allowed by
// the policy, and the policy must allow nothing the code does not call.
//
// The shared store (package dynamostore) is part of the bot's runtime too,
// but for its init.go: `computebot store init` is an admin's one-off,
// whose calls deploy/iam-policy-store-init.json allows, exactly.
func TestIAMPolicyCoversExactlyTheAWSCalls(t *testing.T) {
	calls, problems := scanAWSCalls(t, ".")
	store, storeProblems := scanAWSCalls(t, "dynamostore")
	for _, p := range append(problems, storeProblems...) {
		t.Error(p)
	}
	if len(calls) == 0 || len(store) == 0 {
		t.Fatal("found no AWS calls in package aws or dynamostore; the scanner is broken")
	}
	var runtime, admin []awsCall
	runtime = append(runtime, calls...)
	for _, c := range store {
		if strings.HasPrefix(filepath.Base(c.pos), "init.go:") {
			admin = append(admin, c)
		} else {
			runtime = append(runtime, c)
		}
	}
	if len(admin) == 0 {
		t.Fatal("found no calls in dynamostore/init.go; the scanner is broken")
	}
	matchPolicy(t, policyPath, runtime)
	matchPolicy(t, storeInitPolicyPath, admin)
}

// storeInitPolicyPath is what `computebot store init` needs.
const storeInitPolicyPath = "../deploy/iam-policy-store-init.json"

// tableARN is the table of config/example.yaml's store.dynamodb.table and
// of deploy/dynamodb.yaml's default: the only resource DynamoDB actions
// are allowed on.
const tableARN = "arn:aws:dynamodb:*:*:table/computebot"

// matchPolicy checks that the policy at path allows exactly the calls'
// actions, and DynamoDB's on the table only.
func matchPolicy(t *testing.T, path string, calls []awsCall) {
	t.Helper()
	code := map[string][]string{} // IAM action → where it is called
	for _, c := range calls {
		if _, ok := iamPrefix[c.service]; !ok {
			t.Errorf("%s: %s.%s: no IAM prefix known for SDK service %q; add it to iamPrefix", c.pos, c.service, c.op, c.service)
			continue
		}
		code[c.action()] = append(code[c.action()], c.pos)
	}

	policy := readPolicyAt(t, path)
	allowed := map[string][]string{} // IAM action → Sids allowing it
	for i, st := range policy.Statement {
		for _, a := range st.Action {
			if strings.ContainsAny(a, "*?") {
				t.Errorf("%s: statement %d (%s) allows %q: list exact actions, no wildcards", path, i, st.Sid, a)
			}
			if strings.HasPrefix(a, "dynamodb:") && !slices.Equal(st.Resource, []string{tableARN}) {
				t.Errorf("%s: statement %s allows %s on %q, want the table only (%s)", path, st.Sid, a, st.Resource, tableARN)
			}
			allowed[a] = append(allowed[a], st.Sid)
		}
	}

	var missing, extra []string
	for _, a := range slices.Sorted(maps.Keys(code)) {
		if _, ok := allowed[a]; !ok {
			missing = append(missing, fmt.Sprintf("%s (called at %s)", a, strings.Join(code[a], ", ")))
		}
	}
	for _, a := range slices.Sorted(maps.Keys(allowed)) {
		if _, ok := code[a]; !ok {
			extra = append(extra, fmt.Sprintf("%s (statement %s)", a, strings.Join(allowed[a], ", ")))
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%s does not match the AWS calls of package aws:", path)
		if len(missing) > 0 {
			fmt.Fprintf(&b, "\n  missing from the policy (the code calls them; the bot would get AccessDenied):\n    %s",
				strings.Join(missing, "\n    "))
		}
		if len(extra) > 0 {
			fmt.Fprintf(&b, "\n  extra in the policy (no call in the code; remove them, least privilege):\n    %s",
				strings.Join(extra, "\n    "))
		}
		t.Error(b.String())
	}
	if !t.Failed() {
		t.Logf("policy allows exactly: %s", strings.Join(slices.Sorted(maps.Keys(allowed)), " "))
	}
}

// TestIAMPolicyConditions checks the restrictions that make the policy
// least-privilege: lifecycle actions only on managed instances, launches
// only of the allowed types (those of config/example.yaml), tags only Name
// and computebot:*, and only at launch or on managed instances.
func TestIAMPolicyConditions(t *testing.T) {
	policy := readPolicy(t)
	cfg, err := config.Load("../config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}

	seenSids := map[string]bool{}
	for i, st := range policy.Statement {
		if st.Sid == "" || seenSids[st.Sid] {
			t.Errorf("statement %d: Sid %q is empty or repeated", i, st.Sid)
		}
		seenSids[st.Sid] = true
		if st.Effect != "Allow" {
			t.Errorf("statement %s: Effect %q, want Allow", st.Sid, st.Effect)
		}
		if len(st.Resource) == 0 {
			t.Errorf("statement %s: no Resource", st.Sid)
		}
		for _, a := range st.Action {
			switch a {
			case "ec2:StopInstances", "ec2:StartInstances", "ec2:TerminateInstances":
				if got := st.Condition["StringEquals"]["aws:ResourceTag/computebot:managed"]; !slices.Equal(got, []string{"true"}) {
					t.Errorf("statement %s allows %s without StringEquals aws:ResourceTag/computebot:managed = \"true\" (got %q)", st.Sid, a, got)
				}
				if !slices.Equal(st.Resource, []string{"arn:aws:ec2:*:*:instance/*"}) {
					t.Errorf("statement %s allows %s on %q, want instances only", st.Sid, a, st.Resource)
				}
			case "ec2:CreateTags":
				atLaunch := slices.Equal(st.Condition["StringEquals"]["ec2:CreateAction"], []string{"RunInstances"})
				managed := slices.Equal(st.Condition["StringEquals"]["aws:ResourceTag/computebot:managed"], []string{"true"})
				if atLaunch == managed {
					t.Errorf("statement %s: CreateTags must be conditioned on exactly one of ec2:CreateAction = RunInstances or aws:ResourceTag/computebot:managed = true", st.Sid)
				}
				if keys := st.Condition["ForAllValues:StringLike"]["aws:TagKeys"]; !slices.Equal(keys, []string{"Name", "computebot:*"}) {
					t.Errorf("statement %s: CreateTags tag keys %q, want ForAllValues:StringLike aws:TagKeys [Name computebot:*]", st.Sid, keys)
				}
			case "ec2:RunInstances":
				if !slices.Contains(st.Resource, "arn:aws:ec2:*:*:instance/*") {
					if _, ok := st.Condition["StringEquals"]["ec2:InstanceType"]; ok {
						t.Errorf("statement %s: ec2:InstanceType condition on non-instance resources", st.Sid)
					}
					continue
				}
				if len(st.Resource) != 1 {
					t.Errorf("statement %s: RunInstances on instances must be a statement of its own (its conditions only apply to instances), got %q", st.Sid, st.Resource)
				}
				types := slices.Sorted(slices.Values(st.Condition["StringEquals"]["ec2:InstanceType"]))
				want := slices.Sorted(slices.Values(cfg.Launch.AllowedTypes))
				if !slices.Equal(types, want) {
					t.Errorf("statement %s: ec2:InstanceType %q, want launch.allowed_types of config/example.yaml %q", st.Sid, types, want)
				}
				if got := st.Condition["StringEquals"]["aws:RequestTag/computebot:managed"]; !slices.Equal(got, []string{"true"}) {
					t.Errorf("statement %s: RunInstances must require the request tag computebot:managed = true (got %q)", st.Sid, got)
				}
			}
		}
	}
}

// scanAWSCalls parses the non-test Go files of the package in dir and
// returns every AWS operation they call:
//
//   - a method call on an SDK client, c.ec2.RunInstances(…): the receiver is a
//     name (struct field, variable, parameter) declared with type *svc.Client,
//     assigned from svc.NewFromConfig / svc.New, or declared with a local
//     interface type whose methods take *svc.…Input;
//   - a paginator, ec2.NewDescribeInstancesPaginator(…) → DescribeInstances;
//   - any other call X.Op(ctx, &svc.OpInput{…}), whatever X is.
//
// problems lists what the scanner cannot classify (a waiter, an SDK
// service imported but never seen called), so a new kind of call fails the
// test instead of slipping past it.
func scanAWSCalls(t *testing.T, dir string) (calls []awsCall, problems []string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}

	// Per file: import name → SDK service.
	imports := make([]map[string]string, len(files))
	imported := map[string]string{} // service → first import position
	for i, f := range files {
		imports[i] = map[string]string{}
		for _, spec := range f.Imports {
			path, _ := strconv.Unquote(spec.Path.Value)
			svc, ok := strings.CutPrefix(path, sdkServicePrefix)
			if !ok || strings.Contains(svc, "/") { // .../service/ec2/types is not a client
				continue
			}
			name := svc
			if spec.Name != nil {
				name = spec.Name.Name
			}
			imports[i][name] = svc
			if _, ok := imported[svc]; !ok {
				imported[svc] = fset.Position(spec.Pos()).String()
			}
		}
	}

	// svcOfType: *svc.Client or svc.Client in file i, else "".
	svcOfType := func(i int, e ast.Expr) string {
		if s, ok := e.(*ast.StarExpr); ok {
			e = s.X
		}
		sel, ok := e.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Client" {
			return ""
		}
		pkg, ok := sel.X.(*ast.Ident)
		if !ok {
			return ""
		}
		return imports[i][pkg.Name]
	}

	// Local interfaces standing for a client: a method taking *svc.XInput.
	ifaceSvc := map[string]string{}
	for i, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			it, ok := ts.Type.(*ast.InterfaceType)
			if !ok {
				return true
			}
			for _, m := range it.Methods.List {
				ft, ok := m.Type.(*ast.FuncType)
				if !ok {
					continue
				}
				for _, p := range ft.Params.List {
					if star, ok := p.Type.(*ast.StarExpr); ok {
						if sel, ok := star.X.(*ast.SelectorExpr); ok && strings.HasSuffix(sel.Sel.Name, "Input") {
							if pkg, ok := sel.X.(*ast.Ident); ok && imports[i][pkg.Name] != "" {
								ifaceSvc[ts.Name.Name] = imports[i][pkg.Name]
							}
						}
					}
				}
			}
			return true
		})
	}

	// Names that hold a client: name → service.
	clients := map[string]string{}
	addClient := func(name, svc string, pos token.Pos) {
		if name == "_" || svc == "" {
			return
		}
		if old, ok := clients[name]; ok && old != svc {
			problems = append(problems, fmt.Sprintf("%s: the name %q holds both a %s and a %s client; the scanner cannot tell their calls apart",
				fset.Position(pos), name, old, svc))
		}
		clients[name] = svc
	}
	for i, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Field: // struct fields, parameters, results
				svc := svcOfType(i, n.Type)
				if id, ok := n.Type.(*ast.Ident); ok && svc == "" {
					svc = ifaceSvc[id.Name]
				}
				for _, name := range n.Names {
					addClient(name.Name, svc, name.Pos())
				}
			case *ast.ValueSpec:
				if n.Type != nil {
					svc := svcOfType(i, n.Type)
					if id, ok := n.Type.(*ast.Ident); ok && svc == "" {
						svc = ifaceSvc[id.Name]
					}
					for _, name := range n.Names {
						addClient(name.Name, svc, name.Pos())
					}
				}
				for j, v := range n.Values {
					if j < len(n.Names) {
						addClient(n.Names[j].Name, constructorSvc(imports[i], v), n.Names[j].Pos())
					}
				}
			case *ast.AssignStmt:
				for j, v := range n.Rhs {
					if j < len(n.Lhs) && len(n.Lhs) == len(n.Rhs) {
						if name := lastName(n.Lhs[j]); name != "" {
							addClient(name, constructorSvc(imports[i], v), n.Pos())
						}
					}
				}
			case *ast.KeyValueExpr: // Client{ec2: ec2.NewFromConfig(cfg)}
				if id, ok := n.Key.(*ast.Ident); ok {
					addClient(id.Name, constructorSvc(imports[i], n.Value), id.Pos())
				}
			}
			return true
		})
	}

	seen := map[string]bool{} // services seen called
	for i, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			ce, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := ce.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pos := fset.Position(ce.Pos())
			where := fmt.Sprintf("%s:%d", filepath.Base(pos.Filename), pos.Line)
			fn := sel.Sel.Name

			// Package-level function of an SDK service: svc.NewXPaginator(…).
			if pkg, ok := sel.X.(*ast.Ident); ok {
				if svc, ok := imports[i][pkg.Name]; ok {
					if op, ok := strings.CutSuffix(fn, "Paginator"); ok && strings.HasPrefix(op, "New") {
						calls = append(calls, awsCall{svc, strings.TrimPrefix(op, "New"), where})
						seen[svc] = true
					} else if strings.HasSuffix(fn, "Waiter") {
						problems = append(problems, fmt.Sprintf("%s: %s.%s: teach the scanner which operation this waiter calls", where, pkg.Name, fn))
						seen[svc] = true
					}
					return true // NewFromConfig, With…: no request
				}
			}

			// Method on a client: c.ec2.RunInstances(…), cw.GetMetricData(…).
			if svc, ok := clients[lastName(sel.X)]; ok && !clientMethodsNotOperations[fn] {
				if id, isIdent := sel.X.(*ast.Ident); isIdent && imports[i][id.Name] != "" {
					return true // the package, not a variable of the same name
				}
				calls = append(calls, awsCall{svc, fn, where})
				seen[svc] = true
				return true
			}

			// Any other X.Op(ctx, &svc.OpInput{…}): an SDK call through a
			// receiver the rules above do not know, e.g. f().Op(…).
			for _, arg := range ce.Args {
				if svc := inputLiteralSvc(imports[i], arg, fn); svc != "" {
					calls = append(calls, awsCall{svc, fn, where})
					seen[svc] = true
					break
				}
			}
			return true
		})
	}

	for _, svc := range slices.Sorted(maps.Keys(imported)) {
		if !seen[svc] {
			problems = append(problems, fmt.Sprintf("%s: package aws imports the SDK's %s service but the scanner found no call to it; teach the scanner how it is called",
				imported[svc], svc))
		}
	}
	return calls, problems
}

// inputLiteralSvc is svc when e is &svc.<op>Input{…}, else "".
func inputLiteralSvc(imports map[string]string, e ast.Expr, op string) string {
	u, ok := e.(*ast.UnaryExpr)
	if !ok || u.Op != token.AND {
		return ""
	}
	cl, ok := u.X.(*ast.CompositeLit)
	if !ok {
		return ""
	}
	sel, ok := cl.Type.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != op+"Input" {
		return ""
	}
	pkg, ok := sel.X.(*ast.Ident)
	if !ok {
		return ""
	}
	return imports[pkg.Name]
}

// constructorSvc is the service of svc.NewFromConfig(…) or svc.New(…),
// else "".
func constructorSvc(imports map[string]string, e ast.Expr) string {
	ce, ok := e.(*ast.CallExpr)
	if !ok {
		return ""
	}
	sel, ok := ce.Fun.(*ast.SelectorExpr)
	if !ok || (sel.Sel.Name != "NewFromConfig" && sel.Sel.Name != "New") {
		return ""
	}
	pkg, ok := sel.X.(*ast.Ident)
	if !ok {
		return ""
	}
	return imports[pkg.Name]
}

// lastName is x for x, and f for a.b.f; else "".
func lastName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}

// iamPolicy is the part of an IAM policy document the tests look at.
type iamPolicy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Action    stringOrList
		NotAction stringOrList
		Resource  stringOrList
		Condition map[string]map[string]stringOrList
	}
}

// stringOrList is an IAM value that may be one string or a list.
type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("want a string or a list of strings, got %s", b)
	}
	*s = list
	return nil
}

func readPolicy(t *testing.T) iamPolicy {
	t.Helper()
	return readPolicyAt(t, policyPath)
}

func readPolicyAt(t *testing.T, policyPath string) iamPolicy {
	t.Helper()
	data, err := os.ReadFile(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	var p iamPolicy
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: %v", policyPath, err)
	}
	if p.Version != "2012-10-17" {
		t.Errorf("%s: Version %q, want 2012-10-17", policyPath, p.Version)
	}
	if len(p.Statement) == 0 {
		t.Fatalf("%s: no statements", policyPath)
	}
	for i, st := range p.Statement {
		if len(st.NotAction) > 0 {
			t.Errorf("%s: statement %d (%s) uses NotAction; list the actions instead", policyPath, i, st.Sid)
		}
		for _, r := range st.Sid {
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
				t.Errorf("%s: Sid %q: IAM allows only letters and digits", policyPath, st.Sid)
				break
			}
		}
	}
	return p
}
