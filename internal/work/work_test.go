package work

import (
	"context"
	"testing"
)

func TestBudget(t *testing.T) {
	b := New(10)
	if !b.Spend(4) || !b.Spend(6) {
		t.Fatal("spending within the budget failed")
	}
	if b.Spend(1) {
		t.Fatal("spending past the budget succeeded")
	}
	if b.Spend(0) {
		t.Fatal("an exhausted budget covered more work")
	}
	if b.Left() != 0 || b.Total() != 10 {
		t.Fatalf("left %d total %d", b.Left(), b.Total())
	}
	if b := New(10); b.Spend(-5) || b.Spend(1) {
		t.Fatal("a negative charge gave work back")
	}
}

func TestContext(t *testing.T) {
	if FromContext(context.Background()) != nil {
		t.Fatal("a budget from nowhere")
	}
	b := New(1)
	if FromContext(NewContext(context.Background(), b)) != b {
		t.Fatal("the context lost its budget")
	}
}
