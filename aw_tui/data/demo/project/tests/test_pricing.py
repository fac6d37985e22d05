import unittest

from shop.pricing import order_total


class OrderTotalTest(unittest.TestCase):
    def test_small_order_pays_full_price(self):
        self.assertEqual(order_total(500, 9), 4500)

    def test_bulk_discount_starts_at_ten_items(self):
        self.assertEqual(order_total(500, 10), 4500)

    def test_large_order_gets_the_discount(self):
        self.assertEqual(order_total(500, 20), 9000)

    def test_negative_quantity_is_refused(self):
        with self.assertRaises(ValueError):
            order_total(500, -1)


if __name__ == "__main__":
    unittest.main()
