package trigger

import (
	"reflect"
	"testing"
	"time"
)

// sameTrigger must see a change to any field of Trigger: a field it missed
// would let a consumer's change to its copy into the outcome of a deferred
// run. The test changes each field in turn, by reflection, so that a field
// added to Trigger fails it until sameTrigger compares it.
func TestSameTriggerSeesEveryField(t *testing.T) {
	now := time.Now()
	base := Trigger{ID: "a", Payload: Payload{"k": 1}, TraceContext: map[string]string{"t": "1"}, DueAt: now, Wait: Wait{Until: now}}
	same := base
	if !sameTrigger(&base, &same) {
		t.Fatal("a copy is not the same")
	}
	typ := reflect.TypeFor[Trigger]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		changed := base
		v := reflect.ValueOf(&changed).Elem().Field(i)
		switch {
		case f.Type == reflect.TypeFor[time.Time]():
			v.Set(reflect.ValueOf(now.Add(time.Nanosecond)))
		case f.Type == reflect.TypeFor[Wait]():
			v.Set(reflect.ValueOf(Wait{Until: now, Pending: 1}))
		case v.Kind() == reflect.String:
			v.SetString(v.String() + "x")
		case v.Kind() == reflect.Bool:
			v.SetBool(!v.Bool())
		case v.CanInt():
			v.SetInt(v.Int() + 1)
		case v.CanUint():
			v.SetUint(v.Uint() + 1)
		case v.Kind() == reflect.Map:
			m := reflect.MakeMap(f.Type) // equal content, another map
			for it := v.MapRange(); it.Next(); {
				m.SetMapIndex(it.Key(), it.Value())
			}
			v.Set(m)
		default:
			t.Fatalf("field %s: the test cannot change a %v", f.Name, f.Type)
		}
		if sameTrigger(&base, &changed) {
			t.Errorf("sameTrigger misses a change to %s", f.Name)
		}
	}
}
