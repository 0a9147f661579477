package qr_test

import (
	"errors"
	"fmt"

	"github.com/qrswitch/qrswitch/qr"
)

func ExampleEncode() {
	s, err := qr.Encode(&qr.Payload{
		Scheme:   qr.SchemeElectrumMinimal,
		Accounts: []qr.MerchantAccount{qr.ElectrumAccount("f82d7f64feea4f2ab24da94aaf5c2941")},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s)
	// Output: 00020126500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c2941
}

func ExampleEncode_fieldError() {
	_, err := qr.Encode(&qr.Payload{
		Scheme:       qr.SchemePseudoEMVCo,
		MerchantName: "The Very Long Name Of A Corner Shop",
	})
	fmt.Println(err)
	fmt.Println(errors.Is(err, qr.ErrTooLong))
	// Output:
	// qr: MerchantName (tag 59): too long: 35 characters, at most 25
	// true
}

func ExampleTranID() {
	id, err := qr.TranID("00020126500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c294127260008za.co.mp01105169175130")
	fmt.Println(id, err)
	// Output: f82d7f64feea4f2ab24da94aaf5c2941 <nil>
}

func ExampleDecode_badCRC() {
	_, err := qr.Decode("00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***6304FFFF")
	fmt.Println(err)
	fmt.Println(errors.Is(err, qr.ErrCRC))
	// Output:
	// qr: invalid CRC at byte 133: CRC is FFFF, the payload's is 1D3D
	// true
}
